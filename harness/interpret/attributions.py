"""Per-base attributions of a trained model: gradient × input, integrated gradients (Captum), ISM importance.

How gradients reach the bases. Models take integer base codes `(B, L)`, which have no gradient. Rather than edit
the models or monkey-patch the encoder functions they imported, attributions are taken at the first layer that
reads the encoded sequence, found by one probe forward with pre-hooks on the candidate layers:

- an `nn.Conv1d` with 4 input channels (one-hot models): its input `(B, 4, L)` *is* the one-hot, so Captum's layer
  methods with `attribute_to_layer_input=True` attribute to the one-hot exactly as to a one-hot model input;
- an `nn.Embedding` (k-mer token models such as `kmer_attention`): its output `(B, T, C)`, T = L - k + 1, is
  attributed; summing over C gives one value per token, spread evenly over the k bases the token covers
  (`harness.interpret.attention_rollup.incidence`).

Methods. `saliency`: gradient × input at that layer (Shrikumar et al. 2016; Captum `LayerGradientXActivation`).
`integrated_gradients`: Sundararajan et al. 2017 (Captum `LayerIntegratedGradients`), baseline the all-N sequence
(an all-zero one-hot; for k-mer models the "contains N" token). `ism`: minus the mean logit change over the three
substitutions of each base (`harness.interpret.ism`). Every method returns, per sequence, an `(L, 4)` float32
matrix with the position's attribution in the column of the observed base and 0 elsewhere (all 0 at an N),
ready for a logo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients
from torch import nn

from harness.data.datasets import Seqs
from harness.data.encode import N_CODE
from harness.interpret import GRADIENT_METHODS
from harness.interpret.attention_rollup import incidence
from harness.interpret.ism import LogitFn, saturation_mutagenesis


@dataclass(frozen=True)
class InputLayer:
    """The first layer reading the encoded sequence, and whether it sees a one-hot or k-mer token ids."""

    module: nn.Module
    kind: Literal["onehot", "embedding"]


def find_input_layer(model: nn.Module, codes: torch.Tensor, mask: torch.Tensor) -> InputLayer:
    """The first `Conv1d(in_channels=4)` or `Embedding` that `model(codes, mask)` calls (one probe forward)."""
    candidates = [
        m for m in model.modules() if isinstance(m, nn.Embedding) or (isinstance(m, nn.Conv1d) and m.in_channels == 4)
    ]
    called: list[nn.Module] = []
    handles = [m.register_forward_pre_hook(lambda module, _args: called.append(module)) for m in candidates]
    try:
        with torch.no_grad():
            model(codes[:1], mask[:1])
    finally:
        for h in handles:
            h.remove()
    if not called:
        raise ValueError(
            f"{type(model).__name__}: found no layer reading the sequence (an nn.Embedding or an nn.Conv1d with 4 "
            "input channels), so gradient attributions cannot be mapped to bases; use --method ism"
        )
    return InputLayer(called[0], "embedding" if isinstance(called[0], nn.Embedding) else "onehot")


def to_base_columns(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-position values `(L,)` → `(L, 4)` with each value in the observed base's column (0 at an N)."""
    out = np.zeros((len(codes), 4), np.float32)
    real = codes < N_CODE
    out[np.flatnonzero(real), codes[real]] = values[real]
    return out


def gradient_attributions(
    model: nn.Module,
    seqs: Seqs,
    method: str,
    output: int = 0,
    batch_size: int = 32,
    n_steps: int = 50,
    device: str = "cpu",
) -> list[np.ndarray]:
    """`saliency` or `integrated_gradients` of output column `output`; per sequence `(L, 4)` (module docstring)."""
    if method not in GRADIENT_METHODS:
        raise ValueError(f"gradient method {method!r} is not one of {', '.join(GRADIENT_METHODS)}")
    model = model.to(device).eval()

    def forward(codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(codes, mask)[:, output]  # (B,)

    out: list[np.ndarray] = []
    for start in range(0, len(seqs), batch_size):
        idx = np.arange(start, min(start + batch_size, len(seqs)))
        codes_np, mask_np = seqs.take(idx)
        codes = torch.from_numpy(codes_np.astype(np.int64)).to(device)  # (B, W)
        mask = torch.from_numpy(mask_np).to(device)  # (B, W)
        layer = find_input_layer(model, codes, mask)
        onehot = layer.kind == "onehot"
        if method == "integrated_gradients":
            ig = LayerIntegratedGradients(forward, layer.module)
            attr = ig.attribute(
                codes,
                baselines=torch.full_like(codes, N_CODE),
                additional_forward_args=(mask,),
                n_steps=n_steps,
                internal_batch_size=batch_size * n_steps,
                attribute_to_layer_input=onehot,
            )
        else:
            gxa = LayerGradientXActivation(forward, layer.module)
            attr = gxa.attribute(codes, additional_forward_args=(mask,), attribute_to_layer_input=onehot)
        attr = (attr[0] if isinstance(attr, tuple) else attr).detach().float().cpu().numpy()
        per_base = _per_base(attr, onehot, codes.shape[1])  # (B, W)
        out.extend(to_base_columns(per_base[j, :n], codes_np[j, :n]) for j, n in enumerate(seqs.lengths[idx]))
    return out


def _per_base(attr: np.ndarray, onehot: bool, width: int) -> np.ndarray:
    """Layer attributions → one value per base `(B, W)`: one-hot `(B, 4, W)` summed over channels; token
    embeddings `(B, T, C)` summed over C and spread over each token's k = W - T + 1 bases."""
    if onehot:
        if attr.shape[1:] != (4, width):
            raise ValueError(f"one-hot layer input has shape {attr.shape[1:]}, expected (4, {width})")
        return attr.sum(1)
    tokens = attr.sum(-1)  # (B, T)
    k = width - tokens.shape[1] + 1
    return tokens @ (incidence(width, k).T / k)  # (B, W)


def ism_attributions(
    fn: LogitFn, seqs: Seqs, output: int = 0, batch_size: int = 512, device: str = "cpu"
) -> list[np.ndarray]:
    """ISM importance (minus the mean logit change of the substitutions) per sequence as `(L, 4)`."""
    ids = np.arange(len(seqs)).astype(str)
    results = saturation_mutagenesis(fn, seqs, ids, None, batch_size, output, device)
    return [to_base_columns(r.importance(), r.codes) for r in results]
