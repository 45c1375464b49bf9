"""Diagnostic DAWE variants: why DAWE does not beat AdaMerging on the offline text benchmark.

Not methods for users: each changes one thing about DAWE's input to test one explanation.

* `OracleDAWE` feeds the hypernetwork a one-hot of the input's task instead of its sentence
  embedding: perfect routing. With `hidden_layers: 0` the hypernetwork is a Linear(T, K), i.e. one
  coefficient set per task (bias + that task's column): per-task AdaMerging. If this does not beat
  AdaMerging's one shared set, better features cannot help DAWE here; the entropy objective is the cap.
* `StandardizedDAWE` standardises every feature coordinate (mean 0, std 1 over all test inputs of all
  tasks, which are also the adaptation inputs): the shared direction of all sentence embeddings is
  removed and what differs between inputs is of unit scale.
* `ScaledDAWE` multiplies the unit-norm MiniLM embedding by sqrt(d), so its coordinates are of unit
  scale (they are ~1/sqrt(d) = 0.05): it tests whether DAWE fails to route for lack of input signal.

Run like any method (results go to results/text_minilm/<name>/):
  python main.py fit --config configs/benchmarks/text_minilm.yaml --config configs/methods/dawe_layer_wise.yaml \
    --model.class_path benchmarks.dawe_diagnostics.OracleDAWE --model.init_args.name oracle0_dawe_layer_wise \
    --model.init_args.hidden_layers 0 --model.init_args.lr 5.0e-3 --trainer.default_root_dir runs/diagnostics/oracle0
  python main.py test ... (same arguments) --ckpt_path runs/diagnostics/oracle0/checkpoints/last.ckpt
"""
from __future__ import annotations

import torch

from dawe_merge.methods.dawe import DAWE
from dawe_merge.models.hypernetwork import Hypernetwork


class OracleDAWE(DAWE):
    """Features = one-hot of the input's task: the best routing a hypernetwork could be given."""

    def build_trainable(self) -> None:
        self.hypernetwork = Hypernetwork(len(self.task_names), self.num_coefficients, self.hidden_layers, self.init_lambda)

    def on_fit_start(self) -> None:
        """No sentence features to cache."""

    def features(self, batch: dict, task: str) -> torch.Tensor:
        n = len(batch["index"]) if "index" in batch else len(batch["text"])
        one_hot = torch.zeros(n, len(self.task_names), device=self.device)
        one_hot[:, self.task_names.index(task)] = 1.0
        return one_hot


class ScaledDAWE(DAWE):
    """Unit-norm sentence embeddings times sqrt(d): coordinates of unit scale instead of ~1/sqrt(d)."""

    def features(self, batch: dict, task: str) -> torch.Tensor:
        features = super().features(batch, task)
        return features * features.shape[-1] ** 0.5


class StandardizedDAWE(DAWE):
    """Features standardised per coordinate with statistics of every test input (= every adaptation input)."""

    _mean: torch.Tensor | None = None
    _std: torch.Tensor | None = None

    def _fit_standardizer(self) -> None:
        self._mean = None
        DAWE.on_fit_start(self)  # fills the feature cache with every test input of every task
        cached = torch.stack(list(self._feature_cache.values()))
        self._mean, self._std = cached.mean(0), cached.std(0).clamp_min(1e-6)

    def on_fit_start(self) -> None:
        self._fit_standardizer()

    def on_test_start(self) -> None:
        self._fit_standardizer()

    def features(self, batch: dict, task: str) -> torch.Tensor:
        features = super().features(batch, task)
        if self._mean is None:  # while the cache is being filled
            return features
        return (features - self._mean.to(features.device)) / self._std.to(features.device)
