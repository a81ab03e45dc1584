"""EPLAE: a convolutional autoencoder per sequence whose dense latent feeds a logistic classifier.

EPLAE (enhancer–promoter interaction prediction from the latent space of a convolutional autoencoder): encoder of 4
stride-2 convolutions and a dense latent, decoder of transposed convolutions reconstructing the one-hot input, a
logistic head on the latent; loss = reconstruction MSE + cross-entropy + L2 (1e-5). Channel widths, kernel size and
latent size below are regbench's choices.

per branch: codes (B, L) → one-hot x (B, 4, L) → 4 × [Conv1d stride 2, ReLU] (B, 4c, L/16) → Linear → z (B, latent)
→ Linear → (B, 4c, L/16) → 4 × ConvTranspose1d stride 2 (ReLU between) → logits (B, 4, L); sigmoid vs x for the MSE.
features = [z_enhancer, z_promoter] (B, 2·latent) → the harness's linear (logistic) head.

Pairs get one autoencoder per branch (not a shared one): enhancer and promoter differ in length, and so do their dense
latent layers. The dense layers fix the input length: lengths must be fixed (0 in `io.lengths` raises at build).
In training mode `forward` sets `aux_loss` = recon_weight · MSE + l2 · Σ‖W‖² over the encoder's parameters, which the
harness adds to the cross-entropy.
Input length: exactly the task's fixed length per branch; longer inputs are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from torch import nn

from harness.config import Setting, Settings
from harness.data.encode import one_hot
from harness.plugins import register_model
from harness.spec import Dataset, Encoder, IOSpec, ModelPlugin


class BranchAutoencoder(nn.Module):
    """`forward(x (B, 4, L)) -> (z (B, latent), logits (B, 4, L))` for one fixed length L."""

    def __init__(self, length: int, widths: tuple[int, ...], kernel_size: int, latent: int) -> None:
        super().__init__()
        self.length = length
        pad = kernel_size // 2
        chans = (4, *widths)
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        for i in range(len(widths)):
            enc += [nn.Conv1d(chans[i], chans[i + 1], kernel_size, stride=2, padding=pad), nn.ReLU()]
            dec = [nn.ConvTranspose1d(chans[i + 1], chans[i], kernel_size, 2, pad, output_padding=1), nn.ReLU(), *dec]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec[:-1])  # no ReLU on the output logits
        coded_len = -(-length // 2 ** len(widths))  # each stride-2 layer halves, rounding up
        self.coded_shape = (widths[-1], coded_len)
        self.to_latent = nn.Linear(widths[-1] * coded_len, latent)
        self.from_latent = nn.Linear(latent, widths[-1] * coded_len)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (B, C, L/16)
        z = self.to_latent(h.flatten(1))  # (B, latent)
        h = self.from_latent(z).view(-1, *self.coded_shape)  # (B, C, L/16)
        logits = self.decoder(h)[:, :, : self.length]  # (B, 4, L); each transposed conv doubles the length exactly
        return z, logits


class EplaeEncoder(nn.Module, Encoder):
    """`forward(codes_e, mask_e, codes_p, mask_p) -> latents (B, out_dim)`; sets `aux_loss` in training mode."""

    def __init__(
        self, lengths: tuple[int, ...], widths: tuple[int, ...], kernel_size: int, latent: int, recon_weight: float,
        l2: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.autoencoders = nn.ModuleList(BranchAutoencoder(n, widths, kernel_size, latent) for n in lengths)
        self.recon_weight, self.l2 = recon_weight, l2
        self.out_dim = latent * len(lengths)
        self.aux_loss: torch.Tensor | None = None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        latents, mse = [], []
        for i, ae in enumerate(self.autoencoders):
            x = one_hot(inputs[2 * i], inputs[2 * i + 1])  # (B, 4, W)
            if x.shape[-1] > ae.length:
                raise ValueError(f"eplae: branch {i} got length {x.shape[-1]}, built for fixed length {ae.length}")
            x = F.pad(x, (0, ae.length - x.shape[-1]))  # (B, 4, L); a narrower batch pads with empty columns
            z, logits = ae(x)  # (B, latent), (B, 4, L)
            latents.append(z)
            mse.append(F.mse_loss(torch.sigmoid(logits), x))
        if self.training:
            l2 = sum(p.square().sum() for p in self.parameters())
            self.aux_loss = self.recon_weight * torch.stack(mse).sum() + self.l2 * l2
        else:
            self.aux_loss = None
        return torch.cat(latents, dim=-1)  # (B, latent · n_branches)


def build(io: IOSpec, *, channels: int, kernel_size: int, latent: int, recon_weight: float, l2: float) -> EplaeEncoder:
    """One autoencoder per branch of `io`, with widths (c, 2c, 4c, 4c); needs fixed lengths and an odd kernel."""
    if 0 in io.lengths:
        raise ValueError(
            f"eplae needs fixed sequence lengths (task lengths {io.lengths}; 0 = variable): "
            "its dense latent layer is sized by the input length"
        )
    if kernel_size % 2 == 0:
        raise ValueError(f"eplae: kernel_size must be odd (got {kernel_size}) so each stride-2 layer halves the length")
    widths = (channels, 2 * channels, 4 * channels, 4 * channels)
    return EplaeEncoder(io.lengths, widths, kernel_size, latent, recon_weight, l2)


def _odd_kernel(hp: Mapping[str, Any]) -> str | None:
    k = hp["kernel_size"]
    return f"model.kernel_size={k} must be odd (each stride-2 layer halves the length)" if k % 2 == 0 else None


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "channels": trial.suggest_categorical("channels", [8, 16, 32, 64]),
        "kernel_size": trial.suggest_categorical("kernel_size", [5, 9, 15]),
        "latent": trial.suggest_categorical("latent", [16, 32, 64, 128]),
        "recon_weight": trial.suggest_float("recon_weight", 0.1, 10.0, log=True),
    }


def latent_vectors(predictor: Any, dataset: Dataset, batch_size: int = 256) -> np.ndarray:
    """The trained encoder's latents `(N, out_dim)` of a dataset (eval mode, on the predictor's device)."""
    model = predictor.model
    device = torch.device(predictor.device)
    model.to(device).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            batch = dataset.take(np.arange(start, min(start + batch_size, len(dataset))))
            out.append(model.features(*(torch.from_numpy(a).to(device) for a in batch.inputs)).cpu().numpy())
    return np.concatenate(out)


def inspect(predictor: Any, splits: Mapping[str, Dataset]) -> dict[str, Figure]:
    """PCA of the validation latents, coloured by label (number of positive labels on multi-label tasks)."""
    val = splits["val"]
    xy = PCA(n_components=2).fit_transform(latent_vectors(predictor, val))  # (N, 2)
    labels = val.labels if val.labels.ndim == 1 else val.labels.sum(axis=1)
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    for value in np.unique(labels):
        sel = labels == value
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.6, label=f"{value:g} (n={int(sel.sum())})")
    ax.set(xlabel="PC 1", ylabel="PC 2", title="EPLAE latent space (validation split)")
    ax.legend(title="label" if val.labels.ndim == 1 else "positive labels", loc="best")
    fig.tight_layout()
    return {"plots/eplae_latent_pca.png": fig}


PLUGIN = register_model(
    ModelPlugin(
        name="eplae",
        description="EPLAE: convolutional autoencoder per sequence, logistic head on the dense latent",
        native_inputs="seq_pair",
        defaults=Settings(
            {
                "channels": Setting(32, ge=1, le=1024),
                "kernel_size": Setting(9, ge=1, le=999),
                "latent": Setting(64, ge=1, le=65536),
                "recon_weight": Setting(1.0, ge=0),
                "l2": Setting(1e-5, ge=0),
            },
            rules=(_odd_kernel,),
        ),
        tiny={"channels": 4, "kernel_size": 5, "latent": 8},
        search_space=search_space,
        build=build,
        inspect=inspect,
        paper="EPLAE (convolutional-autoencoder latent + logistic regression for enhancer-promoter interaction)",
    )
)
