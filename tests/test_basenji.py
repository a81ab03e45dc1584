"""models.basenji: a sequence alone scores as in any padded batch (odd lengths too), dilation doubles, bad widths."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from harness.config import ConfigError
from harness.spec import IOSpec
from models.basenji import PLUGIN, build

VARIABLE = IOSpec("seq", (0,), 1, "binary")
encoder = partial(build, VARIABLE, **{**PLUGIN.defaults, **PLUGIN.tiny})


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_a_sequence_alone_scores_as_in_a_padded_batch(pooling: str, rng: np.random.Generator) -> None:
    enc = encoder(pooling=pooling, tower_blocks=2).eval()
    lengths = [61, 37, 50, 9]  # odd lengths: the last pooled position holds one real base and padding
    codes = torch.from_numpy(rng.integers(0, 4, size=(4, 70)).astype(np.uint8))  # garbage past each length
    mask = torch.arange(70)[None, :] < torch.tensor(lengths)[:, None]
    with torch.no_grad():
        batch = enc(codes, mask)
        alone = torch.cat([enc(codes[i : i + 1, :n], mask[i : i + 1, :n]) for i, n in enumerate(lengths)])
        codes[1, 5] = (codes[1, 5] + 1) % 4
        changed = enc(codes, mask)
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(changed[1], batch[1], atol=1e-6)  # a real base does change the features
    torch.testing.assert_close(changed[[0, 2, 3]], batch[[0, 2, 3]])


def test_dilation_doubles_block_after_block() -> None:
    enc = encoder(dilated_blocks=4)
    assert [b.dilated.dilation[0] for b in enc.dilated] == [1, 2, 4, 8]
    assert enc.out_dim == PLUGIN.tiny["final_filters"]


def test_even_width_is_refused() -> None:
    with pytest.raises(ValueError, match=r"basenji: tower_width=4 must be odd"):
        encoder(tower_width=4)
    with pytest.raises(ConfigError, match=r"model.stem_width=14 must be odd"):
        PLUGIN.defaults.check("model", {**PLUGIN.defaults, "stem_width": 14})


def test_default_parameter_count_is_the_documented_one() -> None:
    """docs/models.md states 1,681,920 encoder parameters at the defaults, whatever the length."""
    enc = build(IOSpec("seq", (600,), 1, "binary"), **PLUGIN.defaults)
    assert sum(p.numel() for p in enc.parameters()) == 1_681_920
