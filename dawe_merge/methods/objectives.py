"""What test-time adaptation minimises on a task's unlabelled batch (pure tensor functions).

entropy: H(p) of the merged model's predictions (AdaMerging's and DAWE's original objective).
expert_kl: KL(q_t ‖ p) from the task's own expert's softened predictions q_t = softmax(z_expert / T) to the merged
model's p = softmax(z / T), times T² (so its gradients keep their size as T changes, as in distillation). The expert's
outputs are computed once per input and cached; neither objective reads a label.
"""
from __future__ import annotations

from typing import Literal

import torch

Objective = Literal["entropy", "expert_kl"]


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(p) = −Σ_c p_c log p_c per row, computed stably from log-probabilities."""
    log_p = logits.log_softmax(-1)
    return -(log_p.exp() * log_p).sum(-1)


def expert_kl(logits: torch.Tensor, expert_probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(q ‖ softmax(logits / T)) per row, q the expert's softened probabilities (rows summing to 1)."""
    log_p = (logits.float() / temperature).log_softmax(-1)
    q = expert_probabilities.float()
    return temperature**2 * (q * (q.clamp_min(1e-30).log() - log_p)).sum(-1)
