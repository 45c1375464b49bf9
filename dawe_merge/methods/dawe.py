"""DAWE: a hypernetwork maps each input's frozen features to merging coefficients over task vectors."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.methods.adaptive import MergeMode, Selection, StoreDtype, TestTimeAdaptation
from dawe_merge.methods.objectives import Objective
from dawe_merge.metrics.close_calls import select_rows
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.models.features import FeatureExtractor
from dawe_merge.models.hypernetwork import Hypernetwork
from dawe_merge.models.hypernetwork_io import load_into

DAWE_NEEDS_FEATURES = (
    "DAWE needs a frozen feature extractor for its hypernetwork, and none was given: name one under `features:` in the "
    "benchmark config (as configs/benchmarks/*.yaml do), stack an overlay from configs/features/, or pass "
    "--model.init_args.feature_extractor."
)


class DAWE(TestTimeAdaptation):
    """Data-Adaptive Weight-Ensembling (Tang et al., IJCV 2025).

    Adaptation merges once per task batch with the batch-mean coding (as the reference does, to keep
    one merged weight set per task in memory); `test` merges exactly per sample. Features of the frozen
    extractor are cached by (task, example index): adaptation revisits the same test inputs every epoch.
    """

    method_name = "dawe"
    default_steps = {"task_wise": 175, "layer_wise": 100}

    def __init__(
        self,
        modelpool: ModelPool,
        feature_extractor: FeatureExtractor | None = None,
        mode: MergeMode = "task_wise",
        hidden_layers: int = 0,
        init_lambda: float = 0.3,
        lr: float = 1e-4,
        backward_per_task: bool = False,
        task_vector_dtype: StoreDtype = "float32",
        selection: Selection = "last",
        objective: Objective = "expert_kl",
        temperature: float = 1.0,
        per_sample_eval: bool = True,
        hypernetwork_init: str | None = None,
        standardize_features: bool = True,
        name: str | None = None,
    ) -> None:
        """
        Args:
            feature_extractor: frozen features fed to the hypernetwork, from the batch's raw inputs (a family's own
                view: a SentenceTransformer on texts, a ResNet on images). From the command line: the benchmark
                config's `features` unless given here.
            mode: task_wise (one coefficient per task) or layer_wise (one per task and merged tensor).
            lr: Adam learning rate of the adaptation (reference: 1e-5; the default is the method configs' choice).
            backward_per_task: backpropagate each task's batch on its own, gradients accumulated (the same gradients, one
                merged model alive at a time: for large models and many tasks).
            task_vector_dtype: precision of the stored dense task vectors: float32 keeps the model's own; bfloat16 halves
                the memory that grows with the number of tasks.
            selection: the adapted state `test`, `predict` and exports use: last, or best_validation (of the states
                monitored on the validation splits, step 0 = task arithmetic included, the best average accuracy).
            objective: expert_kl (the KL from each task's expert), or entropy (the original methods'); the
                task-wise configs' choice on validation data (dawe_merge/methods/objectives.py).
            temperature: expert_kl's softening of both distributions.
            hidden_layers: hidden Linear(d, d)+ReLU layers of the hypernetwork (reference: 1; the default is what the method
                configs chose on validation data).
            init_lambda: bias of the hypernetwork's last layer, whose weight starts at 0 (step 0 = task arithmetic).
            per_sample_eval: evaluate with each sample's own coefficients (exact DAWE); False uses the batch mean.
            hypernetwork_init: start from (or, with `test`, evaluate) a hypernetwork adapted elsewhere, e.g. with
                another primary model: a `trainable.pt` export or a hypernetwork pickled by the original DAWE code.
            standardize_features: standardise each feature coordinate with the mean and std over every adaptation
                input before the hypernetwork (not in the reference, which `false` reproduces); the statistics are saved with
                the hypernetwork.
        """
        super().__init__(modelpool, mode=mode, lr=lr, backward_per_task=backward_per_task, task_vector_dtype=task_vector_dtype, selection=selection,
                         objective=objective, temperature=temperature, name=name or f"dawe_{mode}")
        check_number("model.init_args.hidden_layers", hidden_layers, 0)
        if feature_extractor is None:
            raise ConfigError(DAWE_NEEDS_FEATURES)
        self.feature_extractor = feature_extractor.requires_grad_(False)
        self.hidden_layers = hidden_layers
        self.init_lambda = init_lambda
        self.per_sample_eval = per_sample_eval
        self.hypernetwork_init = hypernetwork_init
        self.standardize_features = standardize_features
        self._feature_cache: dict[tuple[str, int], torch.Tensor] = {}

    def build_trainable(self) -> None:
        self.hypernetwork = Hypernetwork(
            self.feature_extractor.dim, self.num_coefficients, self.hidden_layers, self.init_lambda, self.standardize_features
        )
        if self.hypernetwork_init is not None:
            load_into(self.hypernetwork, self.hypernetwork_init, self.checkpoint_metadata())

    def on_fit_start(self) -> None:
        """Fill the feature cache in fixed batches before the first step.

        Features then do not depend on the order adaptation meets the examples in (batched encoders
        pad and sort by length, which moves the last bits), so a resumed run matches an uninterrupted
        one exactly, and every DDP rank sees the same feature for the same example.
        """
        super().on_fit_start()  # expert_kl's targets
        for task, loader in self.taskpool.feature_loaders().items():
            shown = self.trainer.is_global_zero and self.trainer.progress_bar_callback is not None and self.trainer.progress_bar_callback.is_enabled
            for batch in tqdm(loader, desc=f"features {task}", leave=False, disable=not shown):
                self.features(batch, task)
        # from the same cached features on every rank and on resume: the same statistics each time
        if self.standardize_features and not self.hypernetwork.standardizer_fitted:
            self.hypernetwork.fit_standardizer(torch.stack(list(self._feature_cache.values())).to(self.device))

    def saved_state(self) -> dict[str, torch.Tensor]:
        return {**super().saved_state(), **{f"hypernetwork.{n}": b for n, b in self.hypernetwork.named_buffers()}}

    def features(self, batch: dict, task: str) -> torch.Tensor:
        # the cache holds the test inputs adaptation trains on; everything else (monitoring on the validation
        # splits included, whose indices are positions in another split) computes each batch's own
        if "index" not in batch or self._trainer is None or not self.trainer.training:
            return self.feature_extractor.features(batch).to(self.device)
        keys = [(task, int(i)) for i in batch["index"]]
        missing = [i for i, k in enumerate(keys) if k not in self._feature_cache]
        if missing:
            for i, f in zip(missing, self.feature_extractor.features(select_rows(batch, torch.tensor(missing))).cpu()):
                self._feature_cache[keys[i]] = f
        return torch.stack([self._feature_cache[k] for k in keys]).to(self.device)

    @property
    def merges_per_batch_at_evaluation(self) -> bool:
        """With the batch-mean coding every input's outputs depend on its whole batch, so close calls rerun the batch."""
        return not self.per_sample_eval

    def coefficients(self, batch: dict, task: str, per_sample: bool) -> torch.Tensor:
        codings = self.hypernetwork(self.features(batch, task))  # (B, K)
        if not (per_sample and self.per_sample_eval):
            codings = codings.mean(0)  # one merge for the whole (single-task) batch
        return self.expand(codings)

    def learned(self) -> dict | None:
        """A hypernetwork's coefficients depend on the input: their mean per input task over the last evaluation, if any."""
        summary = self.coefficient_summary()
        return None if summary is None else {"kind": "mean coefficients by input task (last evaluation)", **summary}

    def merged_module(self):
        """The adapted model as it runs at test time: raw inputs → per-input coefficients → exact per-sample merge."""
        from dawe_merge.export.dawe_model import DAWEModel

        return DAWEModel(self.modelpool, self.feature_extractor, self.merger, self.hypernetwork, self.heads, self.task_infos or self.task_names, self.mode)

    def checkpoint_metadata(self) -> dict:
        return {
            **super().checkpoint_metadata(),
            "feature_extractor": self.feature_extractor.name,
            "feature_dim": self.feature_extractor.dim,
            "hidden_layers": self.hidden_layers,
            "standardize_features": self.standardize_features,
        }
