"""Exactness of the merged forward: per-sample equals merging each sample's weights and running it alone."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel

from src.models.merged_forward import TaskVectorMerger
from src.families.text.encoder import SentenceEncoder

T = 3


def _tiny_text_model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24)
    encoder = SentenceEncoder(BertModel(config)).eval()
    task_vectors = {n: 0.1 * torch.randn(T, *p.shape) for n, p in encoder.named_parameters()}
    ids = torch.randint(1, 50, (5, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # padding inside the batch
    return encoder, task_vectors, {"input_ids": ids, "attention_mask": mask}


class _VisionTower(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        config = CLIPVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8)
        self.vision = CLIPVisionModel(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixel_values).pooler_output


def _reference_per_sample(model, task_vectors, inputs, coefficients):
    """Independent reference: a deep copy loaded with each sample's merged state dict, run on that sample alone."""
    names = list(task_vectors)
    outputs = []
    for b in range(coefficients.shape[0]):
        clone = copy.deepcopy(model)
        state = clone.state_dict()
        for l, name in enumerate(names):
            state[name] = state[name] + sum(coefficients[b, t, l] * task_vectors[name][t] for t in range(T))
        clone.load_state_dict(state)
        outputs.append(clone(**{k: v[b : b + 1] for k, v in inputs.items()}))
    return torch.cat(outputs)


def test_text_per_sample_equals_state_dict_merge_per_sample():
    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    for batch in (5, 3):  # a second, smaller call reuses the evaluation workspace of the first
        coefficients = torch.rand(batch, T, merger.num_layers)
        part = {k: v[:batch] for k, v in inputs.items()}
        with torch.no_grad():
            out = merger(part, coefficients)
            expected = _reference_per_sample(model, tvs, part, coefficients)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_vision_per_sample_equals_state_dict_merge_per_sample():
    torch.manual_seed(1)
    model = _VisionTower().eval()
    tvs = {n: 0.1 * torch.randn(T, *p.shape) for n, p in model.named_parameters()}
    inputs = {"pixel_values": torch.randn(4, 3, 16, 16)}
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(4, T, merger.num_layers)
    with torch.no_grad():
        torch.testing.assert_close(merger(inputs, coefficients), _reference_per_sample(model, tvs, inputs, coefficients), atol=1e-5, rtol=1e-5)


def test_per_batch_equals_per_sample_with_identical_codings():
    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    shared = torch.rand(T, merger.num_layers)
    with torch.no_grad():
        per_batch = merger(inputs, shared)
        per_sample = merger(inputs, shared.expand(5, -1, -1))
    torch.testing.assert_close(per_sample, per_batch, atol=1e-6, rtol=1e-6)


def test_forward_each_matches_one_forward_per_batch_in_values_and_gradients():
    """Adaptation's one-product merge of K batches gives what K separate merges give, gradients included."""
    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    batches = [{k: v[:2] for k, v in inputs.items()}, {k: v[2:] for k, v in inputs.items()}]
    start = torch.rand(2, T, merger.num_layers)
    each = start.clone().requires_grad_(True)
    separate = start.clone().requires_grad_(True)
    outs_each = merger.forward_each(batches, each)
    outs_separate = [merger(b, separate[k]) for k, b in enumerate(batches)]
    for a, b in zip(outs_each, outs_separate):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    weights = [torch.randn_like(o) for o in outs_each]  # a loss that weighs every output differently
    sum((o * w).sum() for o, w in zip(outs_each, weights)).backward()
    sum((o * w).sum() for o, w in zip(outs_separate, weights)).backward()
    torch.testing.assert_close(each.grad, separate.grad, atol=1e-5, rtol=1e-5)
    assert each.grad[0].abs().sum() > 0 and each.grad[1].abs().sum() > 0

    shared = start[0].clone().requires_grad_(True)  # one (T, L) set serves every batch (AdaMerging)
    for a, b in zip(merger.forward_each(batches, shared), [merger(b, start[0]) for b in batches]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="3 coefficient sets for 2 batches"):
        merger.forward_each(batches, torch.rand(3, T, merger.num_layers))


def test_model_is_left_untouched_and_gradients_reach_coefficients():
    model, tvs, inputs = _tiny_text_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(5, T, merger.num_layers, requires_grad=True)
    merger(inputs, coefficients).sum().backward()
    assert coefficients.grad is not None and coefficients.grad.abs().sum() > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all("forward" not in vars(m) for m in model.modules()), "per-sample patches must be removed"


def test_wrong_coefficient_shape_is_explained():
    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    with pytest.raises(ValueError, match=r"\(T, L\) or \(B, T, L\)"):
        merger(inputs, torch.rand(T + 1, merger.num_layers))


class _TiedModel(torch.nn.Module):
    """Two modules sharing one weight (like T5's shared / encoder.embed_tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = torch.nn.Embedding(10, 4)
        self.encoder_embed = torch.nn.Embedding(10, 4)
        self.encoder_embed.weight = self.shared.weight
        self.proj = torch.nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.encoder_embed(ids)).mean(1)


def test_tied_weights_are_merged_per_sample_too():
    torch.manual_seed(2)
    model = _TiedModel().eval()
    tvs = {n: torch.randn(T, *p.shape) for n, p in model.named_parameters()}  # lists the shared weight once
    assert "encoder_embed.weight" not in tvs
    merger = TaskVectorMerger(model, tvs)
    inputs = {"ids": torch.randint(0, 10, (4, 5))}
    coefficients = torch.rand(4, T, merger.num_layers)
    with torch.no_grad():
        torch.testing.assert_close(merger(inputs, coefficients), _reference_per_sample(model, tvs, inputs, coefficients), atol=1e-5, rtol=1e-5)


def test_theta0_is_stored_once_and_stays_linked_through_moves():
    """The model's merged parameters become views of the stacks' θ0 rows, with unchanged values."""
    model, tvs, inputs = _tiny_text_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    merger = TaskVectorMerger(model, tvs)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name])
        assert param.data_ptr() == merger.stack(name)[-1].data_ptr()
    merger.to(torch.float64)  # converts buffers and parameters separately; they must be linked again
    coefficients = torch.rand(5, T, merger.num_layers, dtype=torch.float64)
    for name, param in model.named_parameters():
        assert param.dtype == torch.float64 and param.data_ptr() == merger.stack(name)[-1].data_ptr()
    with torch.no_grad():
        out = merger(inputs, coefficients)
        expected = _reference_per_sample(model, {n: v.double() for n, v in tvs.items()}, inputs, coefficients)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)


def test_per_sample_linear_in_row_blocks_is_exact(monkeypatch):
    """Large layers build per-sample weights a block of output rows at a time; blocks must not change results."""
    import src.models.per_sample_layers as per_sample_layers

    monkeypatch.setattr(per_sample_layers, "_BLOCK_BYTES", 5 * 16 * 4 * 3)  # a few rows per block, uneven last block
    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(5, T, merger.num_layers)
    for grad in (False, True):  # with and without the evaluation workspace
        with torch.set_grad_enabled(grad):
            out = merger(inputs, coefficients)
        with torch.no_grad():
            expected = _reference_per_sample(model, tvs, inputs, coefficients)
        torch.testing.assert_close(out.detach(), expected, atol=1e-5, rtol=1e-5)


def test_tensors_no_expert_changed_stay_theta0_and_are_not_rebuilt():
    model, tvs, inputs = _tiny_text_model()
    frozen = "backbone.pooler.dense.weight"
    tvs[frozen] = torch.zeros_like(tvs[frozen])
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(5, T, merger.num_layers)
    assert frozen not in merger.merged_parameters(coefficients[0]), "a zero task vector needs no merge"
    with torch.no_grad():
        out = merger(inputs, coefficients)
        expected = _reference_per_sample(model, tvs, inputs, coefficients)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
