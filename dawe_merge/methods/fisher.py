"""Fisher merging: the experts averaged entry by entry, weighted by their diagonal Fisher (dawe_merge/merging/fisher.py).

Each expert's Fisher is the mean over examples of its task's *training* split of the squared gradient of the log-
likelihood of one label per example: the expert's own prediction (`labels: predicted`, no label read) or the training
label (`labels: true`). The likelihood is the distribution adaptation reads (`adaptation_logits`: a head's class
logits, or a decoder's label words or whole vocabulary as the family's config says); a head of numbers counts as a
unit-variance Gaussian, whose Fisher is the squared gradient of the output. Gradients are per example, one backward each: exact, and as slow as that.
`normalize: true` gives every expert the same total Fisher (dawe_merge/merging/fisher.py says why).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.merging.fisher import fisher_weighted_average, normalized_fishers
from dawe_merge.merging.state_dict import StateDict
from dawe_merge.methods.static import StaticMerge
from dawe_merge.modelpool.base import ModelPool, parameter_state_dict
from dawe_merge.models.heads import adaptation_logits


def _single(batch: dict, k: int) -> dict:
    return {key: value[k : k + 1] for key, value in batch.items()}


class FisherMerging(StaticMerge):
    """θ = Σ_t F_t θ_t / Σ_t F_t with each expert's diagonal Fisher on its own task's training examples."""

    method_name = "fisher_merging"

    def __init__(self, modelpool: ModelPool, labels: Literal["predicted", "true"] = "predicted", num_examples: int = 256,
                 batch_size: int = 16, normalize: bool = True, name: str | None = None) -> None:  # fmt: skip
        """
        Args:
            labels: predicted (the expert's own argmax: no label read) or true (the training labels).
            num_examples: training examples per task the Fisher is averaged over (fewer if the split is smaller).
            batch_size: examples per loaded batch (gradients are still taken one example at a time).
            normalize: divide each expert's Fisher by its mean over the merged entries (same total weight per expert).
        """
        super().__init__(modelpool, name=name)
        if labels not in ("predicted", "true"):
            raise ConfigError(f"model.init_args.labels must be predicted or true, got {labels!r}.")
        check_number("model.init_args.num_examples", num_examples, 1)
        check_number("model.init_args.batch_size", batch_size, 1)
        self.labels, self.num_examples, self.batch_size, self.normalize = labels, num_examples, batch_size, normalize
        self.examples: dict[str, int] = {}
        self.mean_fisher: dict[str, float] = {}  # each expert's mean Fisher entry (how much it weighs before normalising)
        self.fishers: dict[str, dict[str, torch.Tensor]] = {}

    def build(self, pretrained: nn.Module) -> None:
        loaders = self.training_data().feature_loaders(self.batch_size, split="train", labelled=self.labels == "true")
        reference = parameter_state_dict(pretrained)
        for task in self.task_names:
            expert = self.modelpool.load_checked_expert(task, reference).eval()
            self.fishers[task], self.examples[task] = self._diagonal_fisher(expert, task, loaders[task], set(reference))
            entries = sum(f.numel() for f in self.fishers[task].values())
            self.mean_fisher[task] = sum(float(f.sum()) for f in self.fishers[task].values()) / max(entries, 1)
            del expert
        super().build(pretrained)

    def _diagonal_fisher(self, expert: nn.Module, task: str, batches, names: set[str]) -> tuple[dict[str, torch.Tensor], int]:
        params = {n: p for n, p in expert.named_parameters() if n in names}
        for p in expert.parameters():
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        sums = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
        device, head, seen = next(expert.parameters()).device, self.heads[task], 0
        for batch in batches:
            for k in range(len(batch["index"])):
                if seen >= self.num_examples:
                    break
                example = _single(batch, k)
                output = adaptation_logits(head, expert(**self.modelpool.prepare_inputs(example, device)))
                if output.dim() == 1:  # a head of numbers: a unit-variance Gaussian
                    objective = output.sum()
                else:
                    log_p = output.float().log_softmax(-1)
                    label = self._true_label(example, task, log_p) if self.labels == "true" else log_p.argmax(-1)
                    objective = log_p.gather(-1, label.view(-1, 1)).sum()
                grads = torch.autograd.grad(objective, list(params.values()), allow_unused=True)
                for (name, _), grad in zip(params.items(), grads):
                    if grad is not None:
                        sums[name] += grad.double() ** 2
                seen += 1
            if seen >= self.num_examples:
                break
        return {n: s / max(seen, 1) for n, s in sums.items()}, seen

    def _true_label(self, example: dict, task: str, log_p: torch.Tensor) -> torch.Tensor:
        label = example["label"]
        if label.is_floating_point() or log_p.shape[-1] != len(self.task_infos[task].classes):
            raise ConfigError(f"labels: true needs class logits, but task '{task}' is read as {log_p.shape[-1]} outputs for "
                              f"{len(self.task_infos[task].classes)} classes (a decoder's vocabulary, or numbers): use labels: predicted.")  # fmt: skip
        return label.to(log_p.device)

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        fishers = [self.fishers[t] for t in self.task_names]
        if self.normalize:
            fishers = normalized_fishers(fishers)
        merged = {}
        for name, base in pretrained.items():
            experts = [base.float() + tv[name].float() for tv in task_vectors]
            merged[name] = fisher_weighted_average(experts, [f[name] for f in fishers])
        self.fishers = {}
        return merged

    def computed_from(self) -> dict:
        """What the merge was computed from, for the report."""
        labels = "the experts' own predictions (no label read)" if self.labels == "predicted" else "the training labels"
        scale = "; each expert's Fisher normalised to mean 1" if self.normalize else ""
        return {"data": f"training split of each task; Fisher of {labels}{scale}", "examples_per_task": dict(self.examples),
                "mean_fisher_per_task": dict(self.mean_fisher)}

    def learned(self) -> dict:
        return {"kind": "fisher_merging", **self.computed_from()}
