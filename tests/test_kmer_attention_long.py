"""models.kmer_attention's positions and long-input options: relative encodings are shift-invariant, banded attention
with a window >= the length is full attention, chunked processing is padding-invariant, bad settings fail clearly."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from harness.config import ConfigError
from harness.data.encode import N_CODE
from harness.spec import IOSpec
from models._attention_positions import ABSOLUTE, RELATIVE, RelativePositionBias
from models.kmer_attention import PLUGIN, SETTINGS, build

VARIABLE = IOSpec("seq", (0,), 1, "binary")
SMALL = {"k": 3, "d_model": 16, "n_heads": 2, "n_layers": 2, "dropout": 0.0}
encoder = partial(build, VARIABLE, **{**PLUGIN.defaults, **SMALL})


def batch(rng: np.random.Generator, lengths: list[int], width: int, left: int = 0) -> tuple[torch.Tensor, ...]:
    """Random ACGT codes; row i real in columns left .. left + lengths[i] − 1, N padding elsewhere."""
    codes = rng.integers(0, 4, size=(len(lengths), width)).astype(np.uint8)
    cols = np.arange(width)[None, :]
    mask = (cols >= left) & (cols < left + np.asarray(lengths)[:, None])
    codes[~mask] = N_CODE
    return torch.from_numpy(codes), torch.from_numpy(mask)


def shifted(codes: torch.Tensor, mask: torch.Tensor, by: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same sequences moved `by` columns to the right (the whole input shifts; N padding before them)."""
    pad_codes = torch.full((codes.shape[0], by), N_CODE, dtype=codes.dtype)
    return torch.cat([pad_codes, codes], 1), torch.cat([torch.zeros(codes.shape[0], by, dtype=torch.bool), mask], 1)


@pytest.mark.parametrize("window", [0, 6])
@pytest.mark.parametrize("pos_encoding", RELATIVE + ABSOLUTE[:2])
def test_relative_positions_are_shift_invariant(pos_encoding: str, window: int, rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    enc = encoder(pos_encoding=pos_encoding, attention_window=window, max_len=128).eval()
    codes, mask = batch(rng, [50, 31, 44], width=50)
    with torch.no_grad():
        ref = enc(codes, mask)
        moved = enc(*shifted(codes, mask, 13))
    if pos_encoding in RELATIVE:
        torch.testing.assert_close(moved, ref, atol=1e-5, rtol=1e-5)
    else:  # absolute positions: a shift does change the features (guards the test above)
        assert not torch.allclose(moved, ref, atol=1e-4)


def test_relative_buckets_are_exact_near_and_log_spaced_far() -> None:
    bias = RelativePositionBias(n_heads=2, n_buckets=32, max_distance=128)
    rel = torch.tensor([0, 1, 7, -1, -7, 8, 30, 64, 128, 10_000, -10_000])
    buckets = bias.bucket(rel).tolist()
    assert buckets[:5] == [0, 1, 7, 17, 23]  # exact below 8 each way; keys after the query in the upper half
    assert buckets[5:] == [8, 11, 14, 15, 15, 31]  # 8 + 8·log(d/8)/log(128/8), capped at the last bucket
    assert bias(rel).shape == (2, 11)


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "relative", "alibi", "rotary"])
def test_a_window_covering_the_input_is_full_attention(pos_encoding: str, rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    full = encoder(pos_encoding=pos_encoding, max_len=64)
    windowed = encoder(pos_encoding=pos_encoding, max_len=64, attention_window=62)  # 64 − 3 + 1 tokens
    windowed.load_state_dict(full.state_dict())
    codes, mask = batch(rng, [64, 40, 17], width=64)
    out_full, out_win = full(codes, mask), windowed(codes, mask)
    torch.testing.assert_close(out_win, out_full, atol=1e-5, rtol=1e-5)
    out_full.sum().backward()
    out_win.sum().backward()
    for (name, a), (_, b) in zip(full.named_parameters(), windowed.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "relative", "alibi", "rotary"])
def test_banded_blocks_equal_the_masked_full_scores(pos_encoding: str, rng: np.random.Generator) -> None:
    """The blockwise path (memory linear in T) against the explicit (T, T) path masked to the band."""
    torch.manual_seed(0)
    enc = encoder(pos_encoding=pos_encoding, attention_window=5).eval()
    codes, mask = batch(rng, [70, 33, 9], width=70)
    with torch.no_grad():
        banded = enc(codes, mask)
        maps = enc.attention_maps(codes, mask)  # explicit path
        for block in enc.blocks:
            block.attn.fused = False
        dense = enc(codes, mask)
        full = encoder(pos_encoding=pos_encoding)
        full.load_state_dict(enc.state_dict())
        unbanded = full.eval()(codes, mask)
    torch.testing.assert_close(banded, dense, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(banded, unbanded, atol=1e-4)  # the window does limit attention
    i, j = torch.meshgrid(torch.arange(68), torch.arange(68), indexing="ij")
    assert torch.all(maps[0][0][:, (i - j).abs() > 5] == 0)


@pytest.mark.parametrize("window", [0, 4])
def test_chunks_do_not_depend_on_padding(window: int, rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    enc = encoder(chunk=16, attention_window=window, pos_encoding="relative").eval()
    lengths = [70, 33, 50, 12]
    codes, mask = batch(rng, lengths, width=70)
    with torch.no_grad():
        ref = enc(codes, mask)
        wider = enc(torch.cat([codes, torch.full((4, 40), N_CODE, dtype=codes.dtype)], 1),
                    torch.cat([mask, torch.zeros(4, 40, dtype=torch.bool)], 1))  # fmt: skip
        alone = torch.cat([enc(codes[i : i + 1, :n], mask[i : i + 1, :n]) for i, n in enumerate(lengths)])
        codes[0, 60] = (codes[0, 60] + 1) % 4  # a base in the last chunk reaches the features through the summaries
        changed = enc(codes, mask)
    torch.testing.assert_close(wider, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(changed[0], ref[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"attention maps need model\.chunk=0"):
        enc.attention_maps(codes, mask)


@pytest.mark.parametrize("stem", ["kmer", "conv"])
def test_long_inputs_train(stem: str, rng: np.random.Generator) -> None:
    """2 kb through a 32-token window in 64-token chunks: one training step, finite gradients everywhere."""
    enc = build(VARIABLE, **{**PLUGIN.defaults, **SMALL, "stem": stem, "max_len": 2048, "attention_window": 32,
                             "chunk": 64, "pos_encoding": "alibi"})  # fmt: skip
    codes, mask = batch(rng, [2048, 1500], width=2048)
    enc(codes, mask).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"attention_window": 1025}, "model.attention_window=1025 exceeds the 1022 tokens"),
        ({"chunk": 4}, r"model.chunk=4 must lie in 8..1022 tokens"),
        ({"chunk": 2000}, r"model.chunk=2000 must lie in 8..1022"),
        ({"chunk": 32, "attention_window": 32}, "must be smaller than model.chunk=32"),
        ({"chunk": 32, "pooling": "cls"}, "model.pooling=cls needs full attention"),
    ],
)
def test_bad_long_input_settings_fail_clearly(hp: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SETTINGS.check("model", {**SETTINGS, **SMALL, **hp})
    with pytest.raises(ValueError, match=message):
        encoder(**hp)


def test_a_window_longer_than_a_fixed_length_task_fails_at_build() -> None:
    with pytest.raises(ValueError, match=r"attention_window=300 exceeds the 198 tokens"):
        build(IOSpec("seq", (200,), 1, "binary"), **{**PLUGIN.defaults, **SMALL, "attention_window": 300})
