"""DAWE's hypernetwork: input features → merging coefficients over task vectors."""
from __future__ import annotations

import torch
from torch import nn


class Hypernetwork(nn.Module):
    """MLP d → d (→ ReLU) × hidden_layers → K whose last layer starts at weight 0 and bias `init_lambda`.

    With that start every input gets coefficient `init_lambda` everywhere, i.e. DAWE begins exactly at
    task arithmetic; hidden_layers=0 is a single Linear (and a bias-only head is AdaMerging).
    """

    def __init__(
        self, in_features: int, out_features: int, hidden_layers: int = 1, init_lambda: float = 0.3, standardize: bool = False
    ) -> None:
        super().__init__()
        self.standardize = standardize
        if standardize:  # fitted once on the adaptation inputs' features (`fit_standardizer`), then saved with the weights
            self.register_buffer("feature_mean", torch.zeros(in_features))
            self.register_buffer("feature_std", torch.ones(in_features))
        layers: list[nn.Module] = []
        for _ in range(hidden_layers):
            layers += [nn.Linear(in_features, in_features), nn.ReLU()]
        last = nn.Linear(in_features, out_features)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, init_lambda)
        self.net = nn.Sequential(*layers, last)
        self.in_features, self.out_features, self.hidden_layers = in_features, out_features, hidden_layers

    @property
    def standardizer_fitted(self) -> bool:
        return self.standardize and not (bool((self.feature_mean == 0).all()) and bool((self.feature_std == 1).all()))

    @torch.no_grad()
    def fit_standardizer(self, features: torch.Tensor) -> None:
        """Per-coordinate mean and std of (N, d) features.

        Why: sentence embeddings are unit-norm (coordinates ~1/sqrt(d)) and share one dominant
        direction, so raw, they barely move the codings; standardised, what differs between inputs
        is of unit scale (measured on the offline text benchmark: see README, DAWE findings).
        """
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            features = (features - self.feature_mean) / self.feature_std
        return self.net(features)


def expand_codings(flat: torch.Tensor, tasks: int, layers: int, layer_wise: bool) -> torch.Tensor:
    """(..., K) codings → (..., T, L) merge coefficients: layer-wise reads row-major (task, tensor); task-wise repeats over L."""
    if layer_wise:
        return flat.reshape(*flat.shape[:-1], tasks, layers)
    return flat.unsqueeze(-1).expand(*flat.shape, layers)
