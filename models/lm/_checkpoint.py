"""Loading a local DNA language-model folder (DNABERT-2, Nucleotide Transformer v2, or any Hugging Face BERT-like
model) exactly as downloaded: checks of what the folder holds, the transformers 5 shims of `models.lm._compat`,
real or random weights, and writing a loadable copy. The probe, the fine-tune plugin and `regbench lm check` all
load through `load_backbone`.

- `AutoModel` when the config's `auto_map` offers it (DNABERT-2) or the model type is built in (plain BERT);
  otherwise `AutoModelForMaskedLM` (NT-v2 offers only that) and its `base_model` is the encoder.
- Always `local_files_only=True` (never the network) and `trust_remote_code=True` (the folder's own code).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.config import ConfigError
from harness.paths import DataNotFoundError
from models.lm import _compat

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")  # fmt: skip
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json")
_KW: dict[str, Any] = {"local_files_only": True, "trust_remote_code": True}


class UnsupportedCheckpointError(ValueError):
    """A folder that is not a loadable language model; the message names the folder and what is missing."""


@dataclass
class Backbone:
    """A loaded checkpoint: its tokenizer, the top-level model as loaded, and `encoder` (the base model)."""

    folder: Path
    tokenizer: Any
    model: nn.Module
    auto_class: str

    @property
    def encoder(self) -> nn.Module:
        return self.model.base_model

    def describe(self) -> str:
        """One line: model class, layers, hidden width, heads, vocabulary, position limit."""
        c = self.encoder.config
        return (f"{type(self.encoder).__name__} (via {self.auto_class}, {getattr(c, 'model_type', '') or 'remote'}): "
                f"{c.num_hidden_layers} layers, hidden {c.hidden_size}, {c.num_attention_heads} heads, "
                f"vocab {c.vocab_size}, max positions {getattr(c, 'max_position_embeddings', '?')}")  # fmt: skip


def has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise DataNotFoundError(f"language-model checkpoint {folder} has no config.json (missing or not a Hugging "
                                "Face model folder)")  # fmt: skip
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UnsupportedCheckpointError(f"{path} is not valid JSON: {err}") from None


def check_folder(folder: Path, need_weights: bool) -> dict[str, Any]:
    """The folder's config.json as a dict, after checking that its code, tokenizer and (if needed) weights exist."""
    raw = _read_config(folder)
    auto_map = raw.get("auto_map") or {}
    missing_code = sorted({ref.split(".")[0] + ".py" for ref in auto_map.values() if isinstance(ref, str)}
                          - {p.name for p in folder.glob("*.py")})  # fmt: skip
    if missing_code:
        raise UnsupportedCheckpointError(f"checkpoint {folder}: config.json's auto_map needs {', '.join(missing_code)}"
                                         ", which is missing; download the whole model folder")  # fmt: skip
    if not auto_map and not raw.get("model_type"):
        raise UnsupportedCheckpointError(f"checkpoint {folder}: config.json has neither auto_map nor model_type; "
                                         "not a Hugging Face model folder regbench can load")  # fmt: skip
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UnsupportedCheckpointError(f"checkpoint {folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    if need_weights and not has_weights(folder):
        raise DataNotFoundError(f"checkpoint {folder} has no weights (none of {', '.join(WEIGHT_FILES)}): download "
                                "them into the folder, or build random weights with `regbench lm check "
                                f"{folder} --random-init --save OUT`")  # fmt: skip
    return raw


def _auto_class(raw: dict[str, Any], folder: Path) -> str:
    auto_map = raw.get("auto_map") or {}
    if not auto_map or "AutoModel" in auto_map:
        return "AutoModel"
    if "AutoModelForMaskedLM" in auto_map:
        return "AutoModelForMaskedLM"
    raise UnsupportedCheckpointError(f"checkpoint {folder}: auto_map offers {', '.join(sorted(auto_map))}, but "
                                     "regbench needs AutoModel or AutoModelForMaskedLM")  # fmt: skip


def _model_class(raw: dict[str, Any], auto_class: str, config: Any, folder: Path) -> type:
    """The model class: the folder's remote code (shimmed) or a built-in transformers class."""
    import transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    ref = (raw.get("auto_map") or {}).get(auto_class)
    if ref is None:
        return getattr(transformers, auto_class)._model_mapping[type(config)]
    try:
        cls = get_class_from_dynamic_module(ref, str(folder), local_files_only=True)
    except ImportError as err:
        raise UnsupportedCheckpointError(
            f"checkpoint {folder}: its code ({ref}) needs a package that is not "
            f"installed: {err} (pip install -c constraints.txt -e .)"
        ) from None
    _compat.patch_model_class(cls)
    return cls


def load_backbone(folder: Path, random_init: bool = False, meta: bool = False, seed: int = 0) -> Backbone:
    """Tokenizer and model of `folder`: its weights, or seeded random ones (`random_init`; `meta`: shapes only)."""
    from transformers import AutoConfig, AutoTokenizer

    raw = check_folder(folder, need_weights=not (random_init or meta))
    _compat.restore_pruning_helper()
    try:
        config = AutoConfig.from_pretrained(folder, **_KW)
        tokenizer = AutoTokenizer.from_pretrained(folder, **_KW)
    except (OSError, ValueError, KeyError) as err:
        raise UnsupportedCheckpointError(f"checkpoint {folder}: config or tokenizer failed to load: {err}") from None
    if tokenizer.pad_token_id is None:
        raise UnsupportedCheckpointError(f"checkpoint {folder}: its tokenizer has no padding token")
    auto_class = _auto_class(raw, folder)
    try:  # a config.json field of the wrong type, a truncated weights file: the model's own code raises anything
        _compat.fill_config(config, tokenizer.pad_token_id)
        cls = _model_class(raw, auto_class, config, folder)
        with warnings.catch_warnings():  # DNABERT-2 warns that Triton is missing: attention runs in PyTorch by design
            warnings.filterwarnings("ignore", message="Unable to import Triton")
            model = _instantiate(cls, config, folder, random_init, meta, seed)
    except UnsupportedCheckpointError:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise UnsupportedCheckpointError(f"checkpoint {folder}: the model failed to build or load its weights "
                                         f"({type(err).__name__}: {first})") from None  # fmt: skip
    _compat.force_torch_attention(model)
    return Backbone(folder, tokenizer, model.eval(), auto_class)


def _instantiate(cls: type, config: Any, folder: Path, random_init: bool, meta: bool, seed: int) -> nn.Module:
    """The folder's weights, seeded random ones, or (`meta`) parameters without storage (shapes and counts only)."""
    if meta:
        from accelerate import init_empty_weights  # a peft dependency; parameters on meta, plain tensors not

        with init_empty_weights(include_buffers=False):
            return cls(config)
    if random_init:
        torch.manual_seed(seed)
        return cls(config)
    with _no_transformers_bars():
        return cls.from_pretrained(folder, config=config, local_files_only=True)


@contextmanager
def _no_transformers_bars() -> Iterator[None]:
    """transformers 5 draws a bar ("Loading weights", "Writing model shards") on every `from_pretrained` /
    `save_pretrained`, a sub-second part of a step that has its own bar or line; its switch is global, so it is
    turned off for the call only (and left off if it was off)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def save_backbone(backbone: Backbone, out: Path) -> Path:
    """A loadable copy of the checkpoint: the source folder's files as they are, plus the model's weights."""
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--save {out}: folder exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    for path in backbone.folder.iterdir():
        if path.is_file() and path.name not in WEIGHT_FILES:
            shutil.copyfile(path, out / path.name)
    with tempfile.TemporaryDirectory() as tmp:
        with _no_transformers_bars():
            backbone.model.save_pretrained(tmp)
        for name in WEIGHT_FILES:
            if (Path(tmp) / name).is_file():
                shutil.copyfile(Path(tmp) / name, out / name)
    return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
