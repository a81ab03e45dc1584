"""`train.amp` (bf16 autocast on a CPU with bf16 units) and `train.compile` (torch.compile equal to eager)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import ConfigError, TrainConfig, train_config
from harness.data.datasets import SeqDataset, Seqs
from harness.data.split_task import SplitTask
from harness.evaluation.metrics import binary_metrics
from harness.interpret.ism import logit_fn
from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.fit import fit
from harness.training.modeling import build_model
from harness.training.precision import amp_dtype, amp_tag, compiled, cpu_bf16_supported
from harness.training.predictor import TorchPredictor, to_tensors
from tests.conftest import random_seqs
from tests.test_train_loop import MOTIF, TINY_ATTENTION, motif_task

needs_bf16 = pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no AVX512-BF16/AMX units")


def long_motif_task(rng: np.random.Generator, n: int, length: int = 200) -> SplitTask:
    """Fixed-length sequences long enough for basset's convolution stack; odd rows carry the motif at 90."""
    seqs = [s[:90] + MOTIF + s[97:] if i % 2 else s for i, s in enumerate(random_seqs(rng, n, length))]
    ds = SeqDataset((Seqs.from_strings(seqs),), (np.arange(n) % 2).astype(np.float32), np.arange(n).astype(str))
    cut = np.arange(n)
    splits = {"train": ds.subset(cut[: n * 6 // 10]), "val": ds.subset(cut[n * 6 // 10 : n * 8 // 10]),
              "test": ds.subset(cut[n * 8 // 10 :])}  # fmt: skip
    return SplitTask("unit.long_motif", IOSpec("seq", (length,), 1, "binary"), "auroc", "fixed", True,
                     lambda: splits, binary_metrics)  # fmt: skip


def test_amp_setting_values() -> None:
    assert train_config({}).amp == "auto"
    assert train_config({"amp": True}).amp == "true"  # YAML `true` from --set or a study file
    assert train_config({"amp": False}).amp == "false"
    with pytest.raises(ConfigError, match=r"train\.amp='maybe' is invalid: must be one of auto, true, false"):
        train_config({"amp": "maybe"})
    assert amp_dtype("cpu", "auto") is None and amp_dtype("cpu", "false") is None
    assert amp_dtype("cpu", "true") == (torch.bfloat16 if cpu_bf16_supported() else None)
    assert amp_tag("cpu", "auto") == {"amp_dtype": "float32"}


def _dtypes_seen(model: torch.nn.Module) -> list[torch.dtype]:
    """The output dtypes of every Linear/Conv1d forward of `model` from now on."""
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv1d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@needs_bf16
def test_cpu_amp_trains_scores_and_runs_ism_in_bf16(rng: np.random.Generator) -> None:
    task = motif_task(rng, n=120)
    plugin = get_model("kmer_attention")
    hp = {**plugin.defaults, **TINY_ATTENTION}
    result = fit(task, plugin, hp, TrainConfig(max_epochs=1, batch_size=32, progress=False, amp="true"))
    assert np.isfinite(result.history[0]["train_loss"])
    predictor = result.predictor
    assert isinstance(predictor, TorchPredictor) and predictor.amp == "true"
    seen = _dtypes_seen(predictor.model)
    test = task.splits()["test"]
    scores = predictor.score(test)
    assert seen and set(seen) == {torch.bfloat16}  # scoring ran under bf16 autocast
    seen.clear()
    fp32 = TorchPredictor(predictor.model, predictor.batch_size, amp="false").score(test)
    assert set(seen) == {torch.float32}
    np.testing.assert_allclose(scores, fp32, atol=0.02)  # bf16 keeps 8 bits of mantissa
    seen.clear()
    codes, mask = to_tensors(test.take(np.arange(4)).inputs, torch.device("cpu"))
    logits = logit_fn(predictor, "cpu")(codes, mask)  # the ISM / variant scoring path
    assert logits.dtype == torch.float32 and set(seen) == {torch.bfloat16}


def test_compiled_forward_equals_eager(rng: np.random.Generator) -> None:
    """kmer_attention's eval forward through `train.compile`'s torch.compile (basset's: in the training test)."""
    task = long_motif_task(rng, n=40)
    plugin = get_model("kmer_attention")
    torch.manual_seed(0)
    model = build_model(plugin, task.io, {**plugin.defaults, **plugin.tiny}).eval()
    inputs = to_tensors(task.splits()["train"].take(np.arange(16)).inputs, torch.device("cpu"))
    with torch.no_grad():
        eager = model(*inputs)
        fast = compiled(model, True)(*inputs)
    torch.testing.assert_close(fast, eager, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_compiled_training_matches_eager(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """An epoch with `train.compile=true` gives eager's loss within 1e-4 and its validation probabilities within
    1e-3 (dropout drawn from eager's random stream: Inductor's own generator draws other masks). One epoch: with
    more, a float-rounding swap of two ranks in val AUROC can make early stopping restore another epoch."""
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    task = long_motif_task(rng, n=120)
    plugin = get_model("basset")
    hp = {**plugin.defaults, **plugin.tiny}
    eager = fit(task, plugin, hp, TrainConfig(max_epochs=1, batch_size=16, progress=False))
    fast = fit(task, plugin, hp, TrainConfig(max_epochs=1, batch_size=16, progress=False, compile=True))
    for a, b in zip(eager.history, fast.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
    val = task.splits()["val"]
    np.testing.assert_allclose(fast.predictor.score(val), eager.predictor.score(val), atol=1e-3)


@pytest.mark.parametrize(("logged", "amp"), [(True, "auto"), (False, "false"), ("true", "true"), (None, "auto")])
def test_a_reloaded_model_scores_in_its_runs_precision(logged: object, amp: str) -> None:
    """`regbench predict/ism` rebuild the predictor with the run's `train.amp` (runs before auto/true/false: a bool)."""
    from harness.tracking.logged_model import as_predictor

    train = {"eval_batch_size": 8, "rc_tta": False, **({} if logged is None else {"amp": logged})}
    predictor = as_predictor(
        torch.nn.Linear(1, 1), {"kind": "torch", "train": train, "io": {"target": "binary"}}, "cpu"
    )
    assert predictor.amp == amp
