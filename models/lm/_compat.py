"""Compatibility shims that let the real DNABERT-2 and Nucleotide Transformer v2 folders load, unmodified, on
transformers 5.x. Each is applied by `models.lm._checkpoint` at load time, changes only the checkpoint's own
remote-code classes or config (never transformers itself, except re-adding one removed helper), and is a no-op when
the thing it fixes is already fine.

Each shim, the checkpoint that needs it, and the error it prevents:
- `fill_config` (DNABERT-2): `AttributeError: 'BertConfig' object has no attribute 'pad_token_id'` (then
  `is_decoder`, `add_cross_attention`): transformers 5 no longer fills these in for a remote config class.
  `pad_token_id` is taken from the tokenizer (DNABERT-2's `[PAD]` is 3).
- `restore_pruning_helper` (NT-v2): `ImportError: cannot import name 'find_pruneable_heads_and_indices' from
  'transformers.pytorch_utils'` when `modeling_esm.py` is imported.
- `patch_model_class`, mask helpers (NT-v2): `AttributeError: ... has no attribute 'get_extended_attention_mask'`
  (then `'get_head_mask'`) in `EsmModel.forward`; 4.x's encoder semantics are restored on the remote classes.
- `patch_model_class`, tied keys (NT-v2): `AttributeError: ... has no attribute 'all_tied_weights_keys'`:
  `EsmForMaskedLM.__init__` calls `init_weights()` instead of `post_init()`, which sets that attribute in 5.x.
- `patch_model_class`, tied-keys format (NT-v2): `AttributeError: 'list' object has no attribute 'keys'` in
  `save_pretrained`: 4.x listed tied parameters (`["lm_head.decoder.weight"]`), 5.x expects `{target: source}`;
  the list becomes a mapping onto the input embeddings, what 4.x tied them to (only under `tie_word_embeddings`,
  false for NT-v2).
- `patch_model_class`, ALiBi (DNABERT-2): `RuntimeError: Tensor on device meta is not on the expected device cpu!`
  in `BertEncoder.rebuild_alibi_tensor` during `from_pretrained`: transformers 5 builds models under a `meta`
  default device and the ALiBi bias (a plain attribute, not a buffer, so never loaded) mixes a `meta` `arange` with
  a CPU `torch.Tensor(list)`. It is now built on the CPU; DNABERT-2's forward moves it to the input's device.
- `force_torch_attention` (DNABERT-2): crashes of the bundled Triton kernel (fp16 only, broken on Triton >= 3);
  attention always runs in PyTorch.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

# Attributes transformers 4.x gave every config and DNABERT-2's code reads; `pad_token_id` comes from the tokenizer.
_ENCODER_CONFIG = {"is_decoder": False, "add_cross_attention": False}


def fill_config(config: Any, pad_token_id: int) -> None:
    """Give a remote config the attributes transformers 5 no longer fills in (values of an encoder-only model)."""
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = pad_token_id
    for key, value in _ENCODER_CONFIG.items():
        if not hasattr(config, key):
            setattr(config, key, value)


def _find_pruneable_heads_and_indices(
    heads: list[int], n_heads: int, head_size: int, already_pruned_heads: set[int]
) -> tuple[set[int], torch.Tensor]:
    """transformers 4.x's helper (removed in 5.x): heads left to prune and the kept indices of a projection."""
    mask = torch.ones(n_heads, head_size)
    heads_left = set(heads) - already_pruned_heads
    for head in heads_left:
        head -= sum(1 if h < head else 0 for h in already_pruned_heads)
        mask[head] = 0
    index = torch.arange(len(mask.view(-1)))[mask.view(-1).eq(1)].long()
    return heads_left, index


def restore_pruning_helper() -> None:
    """Re-add `transformers.pytorch_utils.find_pruneable_heads_and_indices`, imported by NT-v2's `modeling_esm.py`."""
    import transformers.pytorch_utils as pytorch_utils

    if not hasattr(pytorch_utils, "find_pruneable_heads_and_indices"):
        pytorch_utils.find_pruneable_heads_and_indices = _find_pruneable_heads_and_indices  # type: ignore[attr-defined]


def _get_extended_attention_mask(self: nn.Module, attention_mask: torch.Tensor, input_shape: Any, *_: Any) -> Any:
    """4.x semantics for an encoder: `(B, T)` 1/0 mask → additive `(B, 1, 1, T)` bias (0 keep, dtype min drop)."""
    if attention_mask.dim() == 3:
        extended = attention_mask[:, None, :, :]
    elif attention_mask.dim() == 2:
        extended = attention_mask[:, None, None, :]
    else:
        raise ValueError(f"attention_mask of shape {tuple(attention_mask.shape)}: expected (B, T) or (B, T, T)")
    dtype = next(self.parameters()).dtype
    extended = extended.to(dtype)
    return (1.0 - extended) * torch.finfo(dtype).min


def _get_head_mask(self: nn.Module, head_mask: Any, num_hidden_layers: int, *_: Any) -> list[None]:
    """4.x semantics without head masking (regbench never masks heads): one `None` per layer."""
    if head_mask is not None:
        raise ValueError("head_mask is not supported by regbench's transformers 5 compatibility layer")
    return [None] * num_hidden_layers


def _init_weights_with_post_init(original: Any) -> Any:
    def init_weights(self: nn.Module) -> None:
        if "all_tied_weights_keys" not in self.__dict__:
            self.post_init()  # sets all_tied_weights_keys etc., then calls init_weights again (this branch is skipped)
        else:
            original(self)

    init_weights.__regbench_shim__ = True  # type: ignore[attr-defined]
    return init_weights


def _alibi_on_cpu(original: Any) -> Any:
    def rebuild_alibi_tensor(self: nn.Module, size: int, device: Any = None) -> None:
        if device is None:
            with torch.device("cpu"):
                return original(self, size=size)
        return original(self, size=size, device=device)

    rebuild_alibi_tensor.__regbench_shim__ = True  # type: ignore[attr-defined]
    return rebuild_alibi_tensor


def patch_model_class(cls: type) -> None:
    """Give a remote model class (and its remote bases) the 4.x helpers its code calls, and build DNABERT-2's ALiBi
    bias on the CPU (see the table above)."""
    for klass in vars(sys.modules[cls.__module__]).values():
        rebuild = getattr(klass, "rebuild_alibi_tensor", None) if isinstance(klass, type) else None
        if rebuild is not None and not getattr(rebuild, "__regbench_shim__", False):
            klass.rebuild_alibi_tensor = _alibi_on_cpu(rebuild)
    for klass in cls.__mro__:
        if not klass.__module__.startswith("transformers_modules"):
            continue
        for name, helper in (("get_extended_attention_mask", _get_extended_attention_mask),
                             ("get_head_mask", _get_head_mask)):  # fmt: skip
            if not hasattr(klass, name):
                setattr(klass, name, helper)
    for klass in cls.__mro__:
        tied = klass.__dict__.get("_tied_weights_keys")
        if isinstance(tied, list):
            source = f"{klass.base_model_prefix}.embeddings.word_embeddings.weight"
            klass._tied_weights_keys = {key: source for key in tied}
    init = cls.init_weights
    if not getattr(init, "__regbench_shim__", False):
        cls.init_weights = _init_weights_with_post_init(init)  # type: ignore[method-assign]


def force_torch_attention(model: nn.Module) -> None:
    """DNABERT-2: route attention through PyTorch instead of its bundled Triton kernel."""
    for name in {type(m).__module__ for m in model.modules()}:
        module = sys.modules.get(name)
        if getattr(module, "flash_attn_qkvpacked_func", None) is not None:
            module.flash_attn_qkvpacked_func = None  # type: ignore[union-attr]
