"""DAWE's hypernetwork: input features → merging coefficients over task vectors."""
from __future__ import annotations

import torch
from torch import nn


class Hypernetwork(nn.Module):
    """MLP d → d (→ ReLU) × hidden_layers → K whose last layer starts at weight 0 and bias `init_lambda`.

    With that start every input gets coefficient `init_lambda` everywhere, i.e. DAWE begins exactly at
    task arithmetic; hidden_layers=0 is a single Linear (and a bias-only head is AdaMerging).
    """

    def __init__(self, in_features: int, out_features: int, hidden_layers: int = 1, init_lambda: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(hidden_layers):
            layers += [nn.Linear(in_features, in_features), nn.ReLU()]
        last = nn.Linear(in_features, out_features)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, init_lambda)
        self.net = nn.Sequential(*layers, last)
        self.in_features, self.out_features, self.hidden_layers = in_features, out_features, hidden_layers

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
