"""RegMean: each linear layer merged in closed form from the experts' input Gram matrices (dawe_merge/merging/regmean.py).

The Gram matrices come from each expert run on its own task's training split (the inputs of every linear layer the
merge covers, every token position of a sequence counted), never from test data; `computed_from()` says from how
many examples, and the report records it.
"""
from __future__ import annotations

import torch
from torch import nn

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.merging.regmean import regmean_linear
from dawe_merge.merging.state_dict import StateDict
from dawe_merge.methods.static import StaticMerge
from dawe_merge.modelpool.base import ModelPool, parameter_state_dict


def linear_input_grams(module: nn.Module, names: set[str], batches, run, limit: int) -> tuple[dict[str, torch.Tensor], int]:
    """XᵀX of the inputs of every nn.Linear whose weight is in `names` over the first `limit` examples of `batches`
    (`run(batch)` calls the module), and the number of examples seen."""
    grams: dict[str, torch.Tensor] = {}
    hooks = []
    for module_name, layer in module.named_modules():
        key = f"{module_name}.weight"
        if isinstance(layer, nn.Linear) and key in names:

            def add(layer_, args, key=key):
                x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
                grams[key] = grams.get(key, 0) + x.T @ x

            hooks.append(layer.register_forward_pre_hook(add))
    seen = 0
    try:
        with torch.no_grad():
            for batch in batches:
                if seen >= limit:
                    break
                size = len(batch["index"])
                if seen + size > limit:
                    batch = {k: v[: limit - seen] for k, v in batch.items()}
                    size = limit - seen
                run(batch)
                seen += size
    finally:
        for hook in hooks:
            hook.remove()
    return grams, seen


class RegMean(StaticMerge):
    """Linear weights: RegMean's closed form over the experts' input Gram matrices; every other tensor: their mean."""

    method_name = "regmean"

    def __init__(self, modelpool: ModelPool, alpha: float = 0.9, num_examples: int = 256, batch_size: int = 32, name: str | None = None) -> None:
        """
        Args:
            alpha: the share of each Gram matrix's off-diagonal entries kept (1: none shrunk; 0: a diagonal weighting).
            num_examples: training examples per task the Gram matrices are computed from (fewer if the split is smaller).
            batch_size: examples per forward pass while computing them.
        """
        super().__init__(modelpool, name=name)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"model.init_args.alpha must be in [0, 1], got {alpha}.")
        check_number("model.init_args.num_examples", num_examples, 1)
        check_number("model.init_args.batch_size", batch_size, 1)
        self.alpha, self.num_examples, self.batch_size = alpha, num_examples, batch_size
        self.examples: dict[str, int] = {}
        self.grams: dict[str, dict[str, torch.Tensor]] = {}

    def build(self, pretrained: nn.Module) -> None:
        loaders = self.training_data().feature_loaders(self.batch_size, split="train")
        reference = parameter_state_dict(pretrained)
        names = set(reference)
        for task in self.task_names:
            expert = self.modelpool.load_checked_expert(task, reference).eval()
            device = next(expert.parameters()).device
            run = lambda batch, expert=expert, device=device: expert(**self.modelpool.prepare_inputs(batch, device))  # noqa: E731
            self.grams[task], self.examples[task] = linear_input_grams(expert, names, loaders[task], run, self.num_examples)
            del expert
        super().build(pretrained)

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        merged = {}
        for name, base in pretrained.items():
            experts = [base.float() + tv[name].float() for tv in task_vectors]
            grams = [self.grams[t].get(name) for t in self.task_names]
            if all(g is not None for g in grams):
                merged[name] = regmean_linear(experts, grams, self.alpha)
            else:
                merged[name] = torch.stack(experts).mean(0)
        self.grams = {}  # what the merge needed; the module keeps only its result
        return merged

    def computed_from(self) -> dict:
        """What the merge was computed from, for the report."""
        return {"data": "training split of each task (labels unused)", "examples_per_task": dict(self.examples), "alpha": self.alpha}

    def learned(self) -> dict:
        return {"kind": "regmean", **self.computed_from()}
