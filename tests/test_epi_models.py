"""SPEID, EPSAT and EPLAE beyond the shared contract (`test_models.py`): both branches matter, pair padding
invariance (also in training mode), EPLAE's auxiliary loss and latent PCA, parameter counts of the defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE
from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.modeling import build_model, count_parameters
from harness.training.predictor import TorchPredictor
from models._pair_trunk import ConvLstmTrunk

PAIR = IOSpec("seq_pair", (300, 200), 1, "binary")
SINGLE = IOSpec("seq", (200,), 1, "binary")
PAIR_VARIABLE = IOSpec("seq_pair", (0, 0), 1, "binary")
EPI_LENGTHS = (3000, 2000)
EPSAT_PUBLISHED = 685_070  # EPSAT's reported count, whose output layer is Linear(100, 2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tensors are tiny: one thread avoids OpenMP overhead (large on a shared CPU); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, **extra: Any) -> dict[str, Any]:
    plugin = get_model(name)
    return {**plugin.defaults, **plugin.tiny, **extra}


def random_branch(rng: np.random.Generator, lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes `(B, width)` with N padding after each row's length, and the mask."""
    codes = rng.integers(0, 4, size=(len(lengths), width)).astype(np.uint8)
    mask = np.arange(width)[None, :] < np.asarray(lengths)[:, None]
    codes[~mask] = N_CODE
    return torch.from_numpy(codes), torch.from_numpy(mask)


def pad(codes: torch.Tensor, mask: torch.Tensor, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.cat([codes, torch.full((len(codes), extra), N_CODE, dtype=codes.dtype)], dim=1),
        torch.cat([mask, torch.zeros(len(mask), extra, dtype=torch.bool)], dim=1),
    )


@pytest.mark.parametrize("name", ["speid", "epsat", "eplae"])
def test_pair_output_depends_on_both_branches(name: str, rng: np.random.Generator) -> None:
    model = build_model(get_model(name), PAIR, tiny(name)).eval()
    e = random_branch(rng, [300] * 4, 300)
    p = random_branch(rng, [200] * 4, 200)
    with torch.no_grad():
        base = model(*e, *p)
        assert base.shape == (4, 1)
        changed_e = model(*random_branch(rng, [300] * 4, 300), *p)
        changed_p = model(*e, *random_branch(rng, [200] * 4, 200))
    assert (changed_e - base).abs().max() > 1e-6, f"{name} ignores the enhancer"
    assert (changed_p - base).abs().max() > 1e-6, f"{name} ignores the promoter"


@pytest.mark.parametrize("name", ["speid", "epsat", "eplae"])
def test_single_sequence_task_builds_one_branch(name: str, rng: np.random.Generator) -> None:
    model = build_model(get_model(name), SINGLE, tiny(name))
    assert not model.siamese
    branches = model.encoder.autoencoders if name == "eplae" else model.encoder.trunk.branches
    assert len(branches) == 1
    logits = model(*random_branch(rng, [200] * 3, 200))
    logits.sum().backward()
    assert logits.shape == (3, 1)


@pytest.mark.parametrize("name", ["speid", "epsat"])
def test_pair_padding_invariance(name: str, rng: np.random.Generator) -> None:
    """Variable-length pairs: extra padding on either branch leaves every prediction unchanged."""
    model = build_model(get_model(name), PAIR_VARIABLE, tiny(name)).eval()
    e = random_branch(rng, [180, 60, 120, 95], 180)
    p = random_branch(rng, [40, 150, 90, 150], 150)
    with torch.no_grad():
        ref = model(*e, *p)
        torch.testing.assert_close(model(*pad(*e, 23), *pad(*p, 41)), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(*pad(*e, 0), *pad(*p, 7)), ref, atol=1e-5, rtol=1e-5)


def test_trunk_ignores_padding_in_training_mode(rng: np.random.Generator) -> None:
    """Batch-norm statistics come from real positions only and the LSTM never reads padding."""
    trunk = ConvLstmTrunk(2, n_kernels=6, kernel_size=5, pool=3, conv_dropout=0.0, hidden=4, lstm_layers=2).train()
    e = random_branch(rng, [120, 60, 90], 120)
    p = random_branch(rng, [50, 80, 30], 80)
    h, real = trunk(*e, *p)
    h_pad, real_pad = trunk(*pad(*e, 30), *pad(*p, 12))
    assert torch.equal(real, real_pad[:, : real.shape[1]]) and not real_pad[:, real.shape[1] :].any()
    torch.testing.assert_close(h_pad[:, : h.shape[1]], h, atol=1e-5, rtol=1e-5)
    steps = [(e_len - 4) // 3 + (p_len - 4) // 3 for e_len, p_len in ((120, 50), (60, 80), (90, 30))]
    assert real.sum(dim=1).tolist() == steps
    assert (h[~real] == 0).all()


def test_too_short_sequence_raises_clearly(rng: np.random.Generator) -> None:
    model = build_model(get_model("speid"), PAIR_VARIABLE, tiny("speid"))
    with pytest.raises(ValueError, match=r"length 6 is shorter than kernel_size \+ pool - 1 = 7"):
        model(*random_branch(rng, [100, 6], 100), *random_branch(rng, [50, 50], 50))


def test_eplae_refuses_variable_length_and_even_kernels() -> None:
    with pytest.raises(ValueError, match="fixed sequence lengths"):
        build_model(get_model("eplae"), PAIR_VARIABLE, tiny("eplae"))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        build_model(get_model("eplae"), PAIR, tiny("eplae", kernel_size=4))


def test_eplae_reconstructs_odd_lengths(rng: np.random.Generator) -> None:
    encoder = get_model("eplae").build(IOSpec("seq_pair", (301, 97), 1, "binary"), **tiny("eplae"))
    for ae, length in zip(encoder.autoencoders, (301, 97), strict=True):
        z, logits = ae(torch.zeros(2, 4, length))
        assert z.shape == (2, 8) and logits.shape == (2, 4, length)


def test_eplae_aux_loss_is_set_in_training_and_decreases(rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    model = build_model(get_model("eplae"), IOSpec("seq_pair", (96, 64), 1, "binary"), tiny("eplae"))
    inputs = (*random_branch(rng, [96] * 8, 96), *random_branch(rng, [64] * 8, 64))
    model.eval()
    model(*inputs)
    assert model.aux_loss() is None
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        model(*inputs)
        aux = model.aux_loss()
        assert aux is not None and aux.ndim == 0 and aux.requires_grad
        optimizer.zero_grad()
        aux.backward()
        optimizer.step()
        losses.append(aux.item())
    # the MSE of an untrained sigmoid output against one-hot is ~0.25; learning the 1/4 base frequency gives ~0.19
    assert losses[0] > 0.2 and losses[-1] < 0.8 * losses[0], losses[::10]


def test_eplae_inspect_returns_latent_pca(rng: np.random.Generator) -> None:
    plugin = get_model("eplae")
    model = build_model(plugin, PAIR, tiny("eplae"))
    n = 40
    labels = (np.arange(n) % 2).astype(np.float32)
    seqs = [["".join(rng.choice(list("ACGT"), size=w)) for _ in range(n)] for w in (300, 200)]
    val = SeqDataset(
        (Seqs.from_strings(seqs[0]), Seqs.from_strings(seqs[1])), labels, np.array([f"p{i}" for i in range(n)])
    )
    figures = plugin.inspect(TorchPredictor(model, batch_size=16), {"val": val})
    assert list(figures) == ["plots/eplae_latent_pca.png"]
    fig = figures["plots/eplae_latent_pca.png"]
    assert isinstance(fig, Figure)
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert points == n and len(fig.axes[0].collections) == 2  # one scatter per label


def default_count(name: str) -> tuple[int, int]:
    """(encoder parameters, classifier parameters) of the default configuration at lengths (3000, 2000)."""
    model = build_model(get_model(name), IOSpec("seq_pair", EPI_LENGTHS, 1, "binary"), get_model(name).defaults)
    return count_parameters(model.encoder), count_parameters(model)


def test_default_parameter_counts(capsys: pytest.CaptureFixture[str]) -> None:
    counts = {name: default_count(name) for name in ("speid", "epsat", "eplae")}
    with capsys.disabled():
        print("\nparameters of the default configurations at (3000, 2000): encoder / with head")
        for name, (encoder, total) in counts.items():
            print(f"  {name:6s} {encoder:>10,d} / {total:>10,d}")
    # per branch: conv 4·13·200 (no bias) + batch norm 2·200; BiLSTM: 2 layers × 2 directions × (4·100·300 + 2·4·100)
    trunk = 2 * (4 * 13 * 200 + 2 * 200) + 2 * 2 * (4 * 100 * 300 + 2 * 4 * 100)
    assert counts["speid"][0] == trunk + (200 * 800 + 800)
    # EPSAT as published: the same trunk, Q/K/V 3 · 8 · (200·32 + 32), Linear(256, 100), output Linear(100, 2)
    assert counts["epsat"][0] == trunk + 3 * 8 * (200 * 32 + 32) + (256 * 100 + 100)
    assert counts["epsat"][0] + (100 * 2 + 2) == EPSAT_PUBLISHED
