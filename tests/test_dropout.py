"""`models._dropout`: CPU dropout masks from 16 random bits per element, the same distribution as `nn.Dropout`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models._dropout import BITS, Dropout, drop_threshold, dropout, keep_scale


def test_masks_drop_at_rate_p_and_scale_the_rest_exactly() -> None:
    torch.manual_seed(0)
    n, p = 400_000, 0.1
    mask = keep_scale((n,), p, torch.float32, torch.device("cpu"))
    scale = 2**BITS / (2**BITS - drop_threshold(p))
    assert mask.unique().tolist() == [0.0, pytest.approx(scale)]
    dropped = float((mask == 0).float().mean())
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5  # five binomial standard errors
    assert float(mask.mean()) == pytest.approx(1.0, abs=0.005)  # E[mask] = 1
    assert drop_threshold(p) / 2**BITS == pytest.approx(p, abs=2**-BITS)


def test_same_seed_same_mask_and_backward_uses_it() -> None:
    x = torch.randn(8, 33, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, 0.5, True)
    torch.manual_seed(3)
    mask = keep_scale(x.shape, 0.5, x.dtype, x.device)
    torch.testing.assert_close(y, x * mask, rtol=0, atol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, mask, rtol=0, atol=0)


def test_module_is_an_nn_dropout_that_does_nothing_in_evaluation() -> None:
    module = Dropout(0.3)
    assert isinstance(module, nn.Dropout) and module.p == 0.3 and not module.state_dict()
    x = torch.randn(4, 5, dtype=torch.bfloat16)
    assert module.eval()(x) is x
    assert module.train()(x).dtype == torch.bfloat16
    assert dropout(x, 0.0, True) is x


def test_extreme_rates() -> None:
    x = torch.randn(64, 64)
    assert dropout(x, 1e-6, True) is x  # below 2^-17: nothing to drop
    torch.manual_seed(0)
    assert float((keep_scale((64, 64), 1 - 2**-16, torch.float32, x.device) > 0).float().mean()) < 0.01
    assert torch.equal(dropout(x, 1 - 1e-7, True), torch.zeros_like(x))  # rounds to 1: torch's own dropout


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_16_bit_masks_are_the_float_masks_with_the_scale_rounded_once(dtype: torch.dtype, p: float) -> None:
    """16-bit masks are built from the scale's bits (no conversion pass): the same elements kept as in float32 for
    the same seed, each exactly the scale rounded to `dtype`."""
    torch.manual_seed(1)
    reference = keep_scale((3, 1000), p, torch.float32, torch.device("cpu"))
    torch.manual_seed(1)
    mask = keep_scale((3, 1000), p, dtype, torch.device("cpu"))
    scale = torch.tensor(2**BITS / (2**BITS - drop_threshold(p)), dtype=dtype)
    assert mask.dtype == dtype and mask.shape == (3, 1000)
    assert torch.equal(mask, (reference > 0).to(dtype) * scale)
