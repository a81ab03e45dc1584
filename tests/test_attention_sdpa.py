"""The fused attention path (`F.scaled_dot_product_attention`) equals the explicit softmax path it replaced:
same weights, same inputs → outputs and gradients close, padded keys ignored, for kmer_attention and epsat."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from harness.data.encode import N_CODE
from harness.spec import IOSpec
from models import epsat, kmer_attention
from models._dropout import keep_scale


def padded_batch(rng: np.random.Generator, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ACGT codes left-aligned in `max(lengths)` columns; padding is N with mask False."""
    width = max(lengths)
    codes = rng.integers(0, 4, size=(len(lengths), width)).astype(np.uint8)
    mask = np.arange(width)[None, :] < np.asarray(lengths)[:, None]
    codes[~mask] = N_CODE
    return torch.from_numpy(codes), torch.from_numpy(mask)


def set_fused(model: nn.Module, fused: bool) -> int:
    """Switch every attention module of `model` to the fused (SDPA) or explicit path; returns how many."""
    found = [m for m in model.modules() if isinstance(m, kmer_attention.SelfAttention | epsat.MultiHeadSelfAttention)]
    for m in found:
        m.fused = fused
    return len(found)


def kmer_model() -> nn.Module:
    options = {**kmer_attention.PLUGIN.defaults, "n_heads": 4, "n_layers": 2, "d_model": 32, "dropout": 0.0}
    return kmer_attention.build(IOSpec("seq", (0,), 1, "binary"), **options)


def epsat_model() -> nn.Module:
    options = {**epsat.PLUGIN.defaults, **epsat.PLUGIN.tiny, "conv_dropout": 0.0, "dropout": 0.0, "attn_dropout": 0.0}
    return epsat.build(IOSpec("seq_pair", (0, 0), 1, "binary"), **options)


CASES = {
    "kmer_attention": (kmer_model, lambda rng: padded_batch(rng, [60, 23, 41])),
    "epsat": (epsat_model, lambda rng: (*padded_batch(rng, [90, 40, 70]), *padded_batch(rng, [50, 80, 30]))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_equals_explicit_outputs_and_gradients(name: str, rng: np.random.Generator) -> None:
    make, batch = CASES[name]
    torch.manual_seed(0)
    fused = make().train()  # train mode: batch norm and the LSTM as in training; every dropout is 0
    explicit = copy.deepcopy(fused)
    assert set_fused(fused, True) > 0 and set_fused(explicit, False) > 0
    inputs = batch(rng)
    outs = []
    for model in (fused, explicit):
        out = model(*inputs)
        (out.square().sum()).backward()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for (pname, a), (_, b) in zip(fused.named_parameters(), explicit.named_parameters(), strict=True):
        assert a.grad is not None, pname
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=lambda m, p=pname: f"{p}: {m}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_path_ignores_what_padding_holds(name: str, rng: np.random.Generator) -> None:
    make, batch = CASES[name]
    model = make().eval()
    inputs = list(batch(rng))
    with torch.no_grad():
        base = model(*inputs)
        for i in range(0, len(inputs), 2):  # (codes, mask) pairs: random bases where the mask is False
            codes, mask = inputs[i], inputs[i + 1]
            inputs[i] = torch.where(mask, codes, torch.randint_like(codes, 0, 4))
        torch.testing.assert_close(model(*inputs), base, rtol=1e-5, atol=1e-5)


def test_stored_attention_takes_the_explicit_path_and_matches(rng: np.random.Generator) -> None:
    model = kmer_model().eval()
    codes, mask = padded_batch(rng, [60, 23, 41])
    with torch.no_grad():
        plain = model(codes, mask)  # fused
        assert all(b.attn.last_weights is None for b in model.blocks)  # the fused pass keeps no weights
        model.store_attention = True
        torch.testing.assert_close(model(codes, mask), plain, rtol=1e-5, atol=1e-5)  # explicit, storing
    maps = model.last_attention
    assert len(maps) == 2 and all(m.shape == (3, 4, 57, 57) for m in maps)  # k = 4: T = 60 - 4 + 1
    assert torch.all(maps[0][1, :, :, 23 - 4 + 1 :] == 0)  # keys past row 1's 20 real k-mers


def test_cpu_training_with_attention_dropout_is_the_explicit_maths(rng: np.random.Generator) -> None:
    """With attention dropout in training on the CPU, kmer_attention's attention is softmax(q kᵀ/√D, padded keys
    masked) times the mask `models._dropout` draws from the seed, times v, then the projection."""
    attn = kmer_attention.SelfAttention(d_model=16, n_heads=2, dropout=0.25).train()
    x = torch.randn(3, 10, 16)
    key_mask = torch.from_numpy(np.arange(10)[None, :] < np.array([10, 4, 7])[:, None])
    torch.manual_seed(5)
    got = attn(x, key_mask)
    torch.manual_seed(5)
    q, k, v = (t.view(3, 10, 2, 8).transpose(1, 2) for t in attn.qkv(x).split(16, dim=-1))
    scores = (q @ k.transpose(-2, -1) / 8**0.5).masked_fill(~key_mask[:, None, None, :], float("-inf"))
    dropped = scores.softmax(-1) * keep_scale((3, 2, 10, 10), 0.25, torch.float32, torch.device("cpu"))
    want = attn.proj((dropped @ v).transpose(1, 2).reshape(3, 10, 16))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
