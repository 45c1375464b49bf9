"""Exactness of the merged forward: per-sample equals merging each sample's weights and running it alone."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

import dawe_merge.families.vision  # noqa: F401  (registers CLIP's class token as batched)
from dawe_merge.families.text.encoder import SentenceEncoder
from dawe_merge.per_sample.layers import BATCHED_PARAMETERS
from dawe_merge.per_sample.merged_forward import TaskVectorMerger

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
        for layer, name in enumerate(names):
            state[name] = state[name] + sum(coefficients[b, t, layer] * task_vectors[name][t] for t in range(T))
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


@pytest.mark.parametrize("class_token", ["batched", "sample_loop"])
def test_vision_per_sample_equals_state_dict_merge_per_sample(class_token, monkeypatch):
    """Both ways CLIP's embeddings may run: once for the batch (the vision family's registration) or once per sample."""
    if class_token == "sample_loop":
        monkeypatch.delitem(BATCHED_PARAMETERS, CLIPVisionEmbeddings)
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
    import dawe_merge.per_sample.layers as per_sample_layers

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


def _lora_text_model(rank: int = 2):
    """Tiny BERT with low-rank updates on the query and value projections only (ranks differ by task)."""
    from dawe_merge.merging.low_rank import LowRankDelta
    from dawe_merge.merging.state_dict import stack_task_vectors

    model, _, inputs = _tiny_text_model()
    names = [n for n, _ in model.named_parameters() if n.endswith(("query.weight", "value.weight"))]
    shapes = dict(model.named_parameters())
    vectors = [
        {n: LowRankDelta(0.3 * torch.randn(rank + t, shapes[n].shape[1]), 0.3 * torch.randn(shapes[n].shape[0], rank + t), scale=2.0) for n in names}
        for t in range(T)
    ]
    dense_vectors = {n: torch.stack([v[n].dense() for v in vectors]) for n in names}
    return model, stack_task_vectors(vectors), dense_vectors, inputs


def test_low_rank_task_vectors_stay_factored_and_equal_the_dense_merge():
    """W0 x + Σ_t c_t s B_t (A_t x), per sample, equals merging the dense B·A·s: values and coefficient gradients."""
    model, factored, dense_vectors, inputs = _lora_text_model()
    low_rank = TaskVectorMerger(model, factored)
    assert low_rank._factored == set(dense_vectors) and low_rank.num_layers == len(dense_vectors)
    assert not [n for n, _ in low_rank.named_buffers() if n.startswith("stack__")], "no dense copy of a low-rank update"
    dense = TaskVectorMerger(copy.deepcopy(model), dense_vectors)
    start = torch.rand(5, T, low_rank.num_layers)
    for coefficients in (start, start[0]):  # per sample, and one merge shared by the batch
        a, b = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
        ca, cb = (a, b) if coefficients.dim() == 3 else (a[0], b[0])
        out_factored, out_dense = low_rank(inputs, ca), dense(inputs, cb)
        torch.testing.assert_close(out_factored, out_dense, atol=1e-5, rtol=1e-5)
        weights = torch.randn_like(out_dense)
        (out_factored * weights).sum().backward()
        (out_dense * weights).sum().backward()
        torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-4)
        assert a.grad.abs().sum() > 0
    with torch.no_grad():  # and against the independent reference: each sample's merged state dict, run alone
        expected = _reference_per_sample(model, dense_vectors, inputs, start)
        torch.testing.assert_close(low_rank(inputs, start), expected, atol=1e-5, rtol=1e-5)
    batches = [{k: v[:2] for k, v in inputs.items()}, {k: v[2:] for k, v in inputs.items()}]
    for x, y in zip(low_rank.forward_each(batches, start[:2]), dense.forward_each(batches, start[:2])):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_bf16_task_vector_store_equals_the_merge_of_rounded_task_vectors():
    """bf16 keeps τ at half the bytes; θ0 stays fp32 and exact, so outputs match merging the bf16-rounded τ in fp32."""
    model, tvs, inputs = _tiny_text_model()
    rounded = {n: tv.to(torch.bfloat16).float() for n, tv in tvs.items()}
    low = TaskVectorMerger(copy.deepcopy(model), tvs, store_dtype=torch.bfloat16)
    for name, param in low.model.named_parameters():
        assert param.dtype == torch.float32 and torch.equal(param, dict(model.named_parameters())[name]), "θ0 untouched"
    stored = [b for n, b in low.named_buffers() if n.startswith("tau__")]
    assert len(stored) == len(tvs) and all(b.dtype == torch.bfloat16 and b.shape[0] == T for b in stored)
    torch.manual_seed(1)
    per_sample, shared = torch.rand(5, T, low.num_layers), torch.rand(T, low.num_layers)
    with torch.no_grad():
        expected = _reference_per_sample(model, rounded, inputs, per_sample)
        torch.testing.assert_close(low(inputs, per_sample), expected, atol=2e-3, rtol=2e-3)  # products in bf16: c·τ rounded once more
    reference = TaskVectorMerger(copy.deepcopy(model), rounded)
    for coefficients in (shared, per_sample):
        c_low, c_ref = coefficients.clone().requires_grad_(), coefficients.clone().requires_grad_()
        out_low, out_ref = low(inputs, c_low), reference(inputs, c_ref)
        torch.testing.assert_close(out_low, out_ref, atol=2e-3, rtol=2e-3)
        (g_low,), (g_ref,) = torch.autograd.grad(out_low.square().sum(), c_low), torch.autograd.grad(out_ref.square().sum(), c_ref)
        torch.testing.assert_close(g_low, g_ref, atol=2e-2, rtol=2e-2)
        assert g_low.abs().sum() > 0


def test_bf16_merge_is_theta0_plus_the_bf16_product_of_rounded_coefficients_and_task_vectors():
    """What the README states, bit for bit: θ0 (fp32) + bf16(bf16(c) · τ), the product accumulated by the matmul."""
    from dawe_merge.merging.low_precision import LowPrecisionStack

    torch.manual_seed(0)
    tau, theta0, coef = torch.randn(T, 6, 5).to(torch.bfloat16), torch.randn(6, 5), torch.rand(4, T) + 0.123456789
    merged = LowPrecisionStack(tau, theta0).mix(coef)
    product = (coef.to(torch.bfloat16) @ tau.flatten(1)).view(4, 6, 5)
    assert product.dtype == torch.bfloat16
    assert torch.equal(merged, theta0 + product)
    exact = theta0 + torch.einsum("bt,tij->bij", coef.double(), tau.double()).float()  # c and the product in full precision
    assert not torch.equal(merged, exact) and torch.allclose(merged, exact, atol=2e-2)


@pytest.mark.parametrize("linear_path", ["build", "stacked"])
def test_per_sample_forward_adds_about_one_operation_per_merged_matrix(linear_path, monkeypatch):
    """Launch overhead: the per-sample forward runs the static forward's operations plus, per merged tensor, only
    what its per-sample rule needs (Linear weight: its product, and on the stacked-inputs path three more: scale,
    sum over the stack, bias; Embedding: gather, weighted sum, add; LayerNorm: scale and shift), a product and a
    gather per bucket of vectors, and three to extend the coefficients once.
    Before the vectors shared buckets and the coefficients were extended once, every tensor cost three more."""
    import dawe_merge.per_sample.layers as per_sample_layers
    from benchmarks.kernel_count import kernel_count

    monkeypatch.setattr(per_sample_layers, "stacked_inputs_cheaper", lambda *args: linear_path == "stacked")

    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(5, T, merger.num_layers)
    modules = dict(model.named_modules())
    count = {kind: sum(1 for n in merger.names if n.endswith(".weight") and type(modules[n.rsplit(".", 1)[0]]) is kind)
             for kind in (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm)}  # fmt: skip
    budget = (4 if linear_path == "stacked" else 1) * count[torch.nn.Linear] + 3 * count[torch.nn.Embedding] + 2 * count[torch.nn.LayerNorm] + 2 * len(merger._buckets) + 3
    cpu = torch.device("cpu")
    with torch.inference_mode():
        static = kernel_count(lambda: model(**inputs), cpu)
        per_sample = kernel_count(lambda: merger(inputs, coefficients), cpu)
    assert len(merger._buckets) == 2 and per_sample - static <= budget, (per_sample, static, budget)


def test_vision_per_sample_operations_do_not_grow_with_the_batch(monkeypatch):
    """With CLIP's class token registered as batched, no module of the vision tower runs once per sample: the
    per-sample forward's operator count is the same at batch 2 and batch 6. Unregistered, the embeddings' loop adds
    its operators for every sample (the check that the count can see it)."""
    from benchmarks.kernel_count import kernel_count

    torch.manual_seed(1)
    model = _VisionTower().eval()
    merger = TaskVectorMerger(model, {n: 0.1 * torch.randn(T, *p.shape) for n, p in model.named_parameters()})

    def count(batch: int) -> int:
        inputs = {"pixel_values": torch.randn(batch, 3, 16, 16)}
        coefficients = torch.rand(batch, T, merger.num_layers)
        with torch.inference_mode():
            return kernel_count(lambda: merger(inputs, coefficients), torch.device("cpu"))

    assert count(2) == count(6)
    monkeypatch.delitem(BATCHED_PARAMETERS, CLIPVisionEmbeddings)
    assert count(6) > count(2)


@pytest.mark.parametrize("store_dtype", [None, torch.bfloat16])
def test_vision_batched_class_token_equals_the_sample_loop_in_values_and_gradients(store_dtype, monkeypatch):
    """The registered (batched) class token against the per-sample loop it replaces, through both ways a stack is
    mixed (one dtype, or bf16 τ beside fp32 θ0) and through the backward pass adaptation takes."""
    torch.manual_seed(2)
    model = _VisionTower().eval()
    merger = TaskVectorMerger(model, {n: 0.1 * torch.randn(T, *p.shape) for n, p in model.named_parameters()}, store_dtype=store_dtype)
    inputs = {"pixel_values": torch.randn(3, 3, 16, 16)}
    coefficients = torch.rand(3, T, merger.num_layers)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        c = coefficients.clone().requires_grad_()
        out = merger(inputs, c)
        (grad,) = torch.autograd.grad(out.square().sum(), c)
        return out.detach(), grad

    batched = run()
    monkeypatch.delitem(BATCHED_PARAMETERS, CLIPVisionEmbeddings)
    loop = run()
    # bf16 τ: the two paths round c·τ in bf16 at different points (per batch, per sample), as the bf16 store test allows
    tolerance = 1e-4 if store_dtype is None else 2e-2
    torch.testing.assert_close(batched[0], loop[0], atol=tolerance / 10, rtol=tolerance / 10)
    torch.testing.assert_close(batched[1], loop[1], atol=tolerance, rtol=tolerance)
    class_token = merger.layer_index["vision.embeddings.class_embedding"]
    assert batched[1][:, :, class_token].abs().sum() > 0  # the class token's coefficients receive gradient
