import pytest

from harness.plugins import MODELS, TASKS, get_model, load_plugins, make_task
from harness.registry import Registry, UnknownNameError


def test_duplicate_name_raises() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1, "first")
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 2, "again")


def test_unknown_name_lists_near_matches() -> None:
    reg: Registry[int] = Registry("widget")
    for name in ("kmer_attention", "kmer_logreg", "basset"):
        reg.register(name, 0, "")
    with pytest.raises(UnknownNameError) as err:
        reg.get("kmer_atention")
    message = str(err.value)
    assert "Did you mean kmer_attention" in message
    assert "basset" in message  # the full list of known names


def test_decorator_registers_and_returns_object() -> None:
    reg: Registry[object] = Registry("thing")

    @reg.decorator("f", "a factory")
    def f() -> int:
        return 3

    assert reg.get("f") is f
    assert [e.description for e in reg] == ["a factory"]


def test_plugins_registered_with_descriptions() -> None:
    load_plugins()
    assert {"enhancers.synthetic", "enhancers.ienhancer2l"} <= set(TASKS.names())
    assert {"kmer_attention", "kmer_logreg"} <= set(MODELS.names())
    assert all(entry.description for entry in [*TASKS, *MODELS])


def test_unknown_task_and_model_names() -> None:
    with pytest.raises(UnknownNameError, match=r"enhancers\.synthetic"):
        make_task("enhancers.synthetc")
    with pytest.raises(UnknownNameError, match="kmer_attention"):
        get_model("kmer-attention")
