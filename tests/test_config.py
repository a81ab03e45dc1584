import pytest

from harness.config import ConfigError, TrainConfig, merge, parse_overrides, train_config


def test_parse_overrides_types() -> None:
    out = parse_overrides(["model.k=4", "train.lr=1e-3", "train.rc_augment=true", "data.genome=/x/hg19.fa"])
    assert out == {"model": {"k": 4}, "train": {"lr": 0.001, "rc_augment": True}, "data": {"genome": "/x/hg19.fa"}}


@pytest.mark.parametrize("item", ["k=4", "model.k", "optim.lr=1"])
def test_parse_overrides_rejects(item: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides([item])


def test_merge_unknown_and_wrong_type() -> None:
    with pytest.raises(ConfigError, match=r"unknown model setting\(s\) model.kk; valid: d_model, k"):
        merge("model", {"k": 4, "d_model": 64}, {"kk": 3})
    with pytest.raises(ConfigError, match=r"model.k='abc': expected int"):
        merge("model", {"k": 4}, {"k": "abc"})
    with pytest.raises(ConfigError, match=r"model.k=2.5: expected int"):
        merge("model", {"k": 4}, {"k": 2.5})
    assert merge("model", {"lr": 0.1, "flag": False}, {"lr": 1, "flag": "true"}) == {"lr": 1.0, "flag": True}


def test_train_config_validation_names_value() -> None:
    with pytest.raises(ConfigError, match=r"train.lr=-1.0 is invalid: must be > 0"):
        train_config({"lr": -1})
    with pytest.raises(ConfigError, match=r"train\.schedule='step'"):
        TrainConfig(schedule="step")
    assert train_config({}, seed=3, max_epochs=None).seed == 3
