"""LoRA experts through `peft`: training adapters, loading them, and reading their factors as task vectors.

peft does the LoRA work (wrapping, saving, loading, merging for the individual row); this module only
reads a loaded adapter's A, B and scaling into `LowRankDelta`s keyed by the host model's parameter
names, so merges keep them factored.
"""
from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from dawe_merge.errors import ConfigError, require
from dawe_merge.library_versions import check_library_pairs
from dawe_merge.merging.low_rank import LowRankDelta, TaskVector
from dawe_merge.merging.state_dict import IncompatibleExpertError
from dawe_merge.paths import is_adapter

# what `fit` of an expert trains when a pool's `lora` names nothing else: peft.LoraConfig's own keys
LORA_DEFAULTS = {"r": 16, "lora_alpha": 32.0, "lora_dropout": 0.1, "target_modules": ["query", "value"]}
SHORT_NAMES = {"rank": "r", "alpha": "lora_alpha", "dropout": "lora_dropout"}  # the keys configs used before 0.2


def lora_config(given: dict | None):
    """A `peft.LoraConfig` from a config mapping (any LoraConfig key; a plain dict keeps configs stackable)."""
    if given is None:
        return None
    peft = require("peft", "peft", "LoRA experts")
    settings = {**LORA_DEFAULTS, **{SHORT_NAMES.get(k, k): v for k, v in given.items()}}
    try:
        return peft.LoraConfig(**settings)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"modelpool lora: {err}; its keys are peft.LoraConfig's (r, lora_alpha, lora_dropout, target_modules, ...).") from err


def wrap_for_training(model: nn.Module, config) -> nn.Module:
    """`model` with fresh LoRA adapters (a `peft.LoraConfig`); only the adapters require gradients."""
    peft = require("peft", "peft", "LoRA experts")
    return peft.get_peft_model(model, copy.deepcopy(config))


def load_adapter(model: nn.Module, folder: str | Path) -> nn.Module:
    """`model` (modified in place) with the adapter saved in `folder`, frozen; an adapter made for another model is named first."""
    peft = require("peft", "peft", "LoRA experts")
    check_library_pairs("loading LoRA experts", ("peft", "transformers"))
    check_adapter_fits(model, Path(folder))
    return peft.PeftModel.from_pretrained(model, str(folder), is_trainable=False)


def _adapter_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of the adapter's weights, read without loading them (safetensors) or safely (bin)."""
    if (folder / "adapter_model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    if (folder / "adapter_model.bin").is_file():
        import torch

        return {k: tuple(v.shape) for k, v in torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True).items()}
    return {}


def check_adapter_fits(model: nn.Module, folder: Path) -> None:
    """Every LoRA pair of the adapter sits on a Linear of `model` with matching in/out sizes, or an error says which does not.

    peft would otherwise fail deep inside (a size mismatch in load_state_dict) or, for target modules the
    model lacks, with a message that does not say the adapter was made for another model.
    """
    import json

    try:
        shapes = _adapter_shapes(folder)
        config = json.loads((folder / "adapter_config.json").read_text())
    except Exception:  # damaged files: peft's own loading reports them, as a file to copy again
        return
    base = config.get("base_model_name_or_path") or "unknown"
    modules = dict(model.named_modules())
    for key, shape in shapes.items():
        if ".lora_A." not in key:
            continue
        path = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        layer = modules.get(path)
        weight = getattr(layer, "weight", None)
        if weight is None or weight.dim() != 2:
            raise IncompatibleExpertError(
                f"LoRA adapter '{folder}' targets '{path}' ({config.get('target_modules')}), which the pretrained model does not have "
                f"as a Linear layer: it was made for another architecture (its base model: {base})."
            )
        # transformers' Conv1D (GPT-2's c_attn, c_fc, c_proj) stores its weight as (in, out); a Linear as (out, in)
        layer_out, layer_in = weight.shape[::-1] if type(layer).__name__ == "Conv1D" else weight.shape
        out_features = shapes.get(key.replace(".lora_A.", ".lora_B."), (layer_out,))[0]
        if shape[1] != layer_in or out_features != layer_out:
            raise IncompatibleExpertError(
                f"LoRA adapter '{folder}' was made for another base model ({base}): its update of '{path}' is "
                f"{out_features}×{shape[1]}, the pretrained model's layer is {layer_out}×{layer_in}."
            )


def merged_adapter(model: nn.Module, folder: str | Path) -> nn.Module:
    """The host model with the adapter merged into its weights (peft's merge): a plain module again."""
    return load_adapter(model, folder).merge_and_unload()


def adapter_updates(peft_model: nn.Module, prefix: str = "") -> dict[str, LowRankDelta]:
    """The loaded adapter's updates, keyed `prefix + <host module path>.weight`, as factored `LowRankDelta`s."""
    from peft.tuners.lora import LoraLayer

    host = peft_model.get_base_model()
    paths = {id(m): name for name, m in host.named_modules()}
    updates = {}
    for module in host.modules():
        if not isinstance(module, LoraLayer) or not module.active_adapters:
            continue
        name = module.active_adapters[0]
        if name not in module.lora_A:
            continue  # an adapter on an embedding or another layer type: not a Linear's A/B pair
        A, B = module.lora_A[name].weight.detach(), module.lora_B[name].weight.detach()
        updates[f"{prefix}{paths[id(module)]}.weight"] = LowRankDelta(A.float(), B.float(), float(module.scaling[name]))
    return updates


class PeftExperts:
    """Mixin for a ModelPool whose module holds a `transformers` model at `host_attribute`: experts may be
    peft adapters (read as factored updates), and `fit` of an expert trains an adapter when `lora` is set."""

    host_attribute: str
    lora: object | None  # a peft.LoraConfig (`lora_config`), or None: experts are trained whole
    accepts_adapters = True

    def host_model(self, path: str | None = None) -> nn.Module:
        """A `transformers` model from `path` (a full fine-tune), by default a fresh pretrained one (an adapter's host)."""
        raise NotImplementedError

    def expert_host(self, task: str) -> nn.Module:
        """The expert's `transformers` model: its adapter merged by peft, or the full fine-tune as saved."""
        path = self.expert_path(task)
        return merged_adapter(self.host_model(), path) if is_adapter(path) else self.host_model(path)

    def expert_update(self, task: str, reference) -> TaskVector:
        path = self.expert_path(task)
        if not is_adapter(path):
            return super().expert_update(task, reference)
        return adapter_updates(load_adapter(self.host_model(), path), prefix=f"{self.host_attribute}.")

    def prepare_for_finetuning(self, model: nn.Module) -> nn.Module:
        if self.lora is not None:
            setattr(model, self.host_attribute, wrap_for_training(getattr(model, self.host_attribute), self.lora))
        return model
