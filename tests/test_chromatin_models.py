"""Basset and DeepSEA: the published layer sizes at the published input shapes, the fixed-length contract, and
N-padding of shorter inputs. (Forward/backward on tiny variants is covered for every model by test_models.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data.encode import N_CODE
from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.modeling import build_model, count_parameters

# Published configurations: (input length, labels) → (flattened conv size, parameters incl. output layer). The
# flatten sizes match the Torch models converted by kipoi/models (Linear(2000, 1000), Linear(50880, 925)).
PUBLISHED = {"basset": (600, 164, 2000, 4_135_064), "deepsea": (1000, 919, 50_880, 52_843_119)}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_sizes(name: str) -> None:
    length, n_labels, flat, n_params = PUBLISHED[name]
    plugin = get_model(name)
    model = build_model(plugin, IOSpec("seq", (length,), n_labels, "multilabel"), plugin.defaults)
    assert model.encoder.fc[0].in_features == flat
    assert model.head.in_features == plugin.defaults["fc_dim"] and model.head.out_features == n_labels
    assert count_parameters(model) == n_params


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_fixed_length_contract(name: str) -> None:
    plugin = get_model(name)
    with pytest.raises(ValueError, match="fixed input length"):
        build_model(plugin, IOSpec("seq", (0,), 3, "multilabel"), plugin.defaults)
    with pytest.raises(ValueError, match="too short"):
        build_model(plugin, IOSpec("seq", (100,), 3, "multilabel"), plugin.defaults)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_shorter_input_is_n_padded(name: str, rng: np.random.Generator) -> None:
    plugin = get_model(name)
    model = build_model(plugin, IOSpec("seq", (200,), 4, "multilabel"), {**plugin.defaults, **plugin.tiny}).eval()
    codes = torch.from_numpy(rng.integers(0, 4, size=(2, 170)).astype(np.uint8))
    mask = torch.ones(2, 170, dtype=torch.bool)
    padded = torch.cat([codes, torch.full((2, 30), N_CODE, dtype=torch.uint8)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(codes, mask), model(padded, torch.ones(2, 200, dtype=torch.bool)))
        with pytest.raises(ValueError, match="exceeds the model's fixed length 200"):
            model(torch.zeros(2, 201, dtype=torch.uint8), torch.ones(2, 201, dtype=torch.bool))
