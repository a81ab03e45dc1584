"""Contract tests every registered model must pass (timm-style: one parametrised test over all plugins).

The checks themselves live in `harness.contract.model_checks`, shared with `regbench plugin check`. Torch models:
each plugin's `tiny` variant × four task shapes, built through `harness.training.modeling.build_model`: logits
shape, finiteness, gradients on every parameter, padding invariance. Every model: settings and search space inside
their declared ranges, a 1-epoch tiny train on each synthetic task and a stored model that scores the same.
Sklearn baselines: they find a planted motif, use both branches of a pair task, handle multi-label targets and
survive pickling.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from harness.contract import CheckSkipped
from harness.contract import model_checks as mc
from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import decode
from harness.plugins import MODELS, load_plugins
from harness.spec import IOSpec, ModelPlugin, Task
from models._kmer_features import kmer_spectrum

load_plugins()
PLUGINS = [e.obj for e in MODELS]
IO_SPECS = mc.IO_SPECS
MOTIFS = ("TGACTCA", "CCAATCG", "GGGCGGG")  # AP-1-like, and two arbitrary 7-mers
tiny_hp = mc.tiny_hp
T = TypeVar("T")


def contract(plugins: list[ModelPlugin]) -> list[Any]:
    """Plugins for the contract tests; those that need a checkpoint or a feature table are skipped with a reason."""
    reason = mc.sequence_skip_reason
    return [pytest.param(p, id=p.name, marks=pytest.mark.skip(reason=reason(p))) if reason(p) else p
            for p in plugins]  # fmt: skip


TORCH = contract([p for p in PLUGINS if p.is_torch])
SKLEARN = contract([p for p in PLUGINS if p.fit_sklearn is not None])


def checked(check: Callable[..., T], *args: Any) -> T:
    """Run one check of `harness.contract.model_checks`; a check that does not apply skips the test."""
    try:
        return check(*args)
    except CheckSkipped as skip:
        pytest.skip(str(skip))


def test_plugins_are_discovered() -> None:
    """Guards the parametrised tests below against an empty registry (e.g. `models` imported as a namespace)."""
    assert {"kmer_attention", "kmer_logreg"} <= set(MODELS.names()), f"registered: {MODELS.names()}"


@pytest.mark.parametrize("io_name", list(IO_SPECS))
@pytest.mark.parametrize("plugin", TORCH, ids=lambda p: p.name)
def test_forward_backward(plugin: ModelPlugin, io_name: str, rng: np.random.Generator) -> None:
    """Logits `(B, n_outputs)` and encoder features `(B, out_dim)`, finite; gradients on every trainable parameter,
    finite, some of the encoder's non-zero."""
    checked(mc.check_forward, plugin, IO_SPECS[io_name], rng)
    checked(mc.check_gradients, plugin, IO_SPECS[io_name], rng)


@pytest.mark.parametrize("plugin", TORCH, ids=lambda p: p.name)
def test_padding_does_not_change_predictions(plugin: ModelPlugin, rng: np.random.Generator) -> None:
    checked(mc.check_padding, plugin, rng)


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_tiny_overrides_known_hyperparameters(plugin: ModelPlugin) -> None:
    mc.check_settings(plugin)  # tiny keys in defaults, of the default's type, inside the declared ranges
    assert plugin.paper, f"{plugin.name}: name the paper"


@pytest.mark.parametrize("high", [False, True], ids=["low", "high"])
@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_search_space_extremes_build(plugin: ModelPlugin, high: bool, rng: np.random.Generator) -> None:
    space = mc.suggest(plugin, high)  # keys in defaults, each suggested once, values inside the declared ranges
    if mc.sequence_skip_reason(plugin):
        pytest.skip(mc.sequence_skip_reason(plugin))
    mc.check_builds_with(plugin, {**plugin.defaults, **space}, rng)


@pytest.fixture(scope="module")
def synthetic_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Task]:
    """The tiny synthetic tasks of `mc.SYNTHETIC_TASKS`, built once for this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGBENCH_CACHE", str(tmp_path_factory.mktemp("synthetic")))
        return {name: mc.synthetic_task(name) for name in mc.SYNTHETIC_TASKS}


@pytest.mark.parametrize("task", list(mc.SYNTHETIC_TASKS))
@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_tiny_train_and_stored_state(plugin: ModelPlugin, task: str, synthetic_tasks: dict[str, Task]) -> None:
    """One epoch of the tiny variant on the synthetic task; the model stored as a run logs it scores the same."""
    trained = checked(mc.tiny_train, plugin, synthetic_tasks[task])
    mc.check_train(trained)
    mc.check_state(plugin, trained)


# ---------------------------------------------------------------- sklearn baselines


def motif_dataset(
    rng: np.random.Generator, n: int, motifs: tuple[str, ...], length: int = 100, branches: int = 1
) -> tuple[SeqDataset, np.ndarray]:
    """Random sequences of 60..length bases; label j of a row = motif j planted in its last branch."""
    y = rng.random((n, len(motifs))) < 0.5
    seqs: list[list[str]] = [[] for _ in range(branches)]
    for i in range(n):
        for b in range(branches):
            s = "".join(rng.choice(list("ACGT"), size=rng.integers(60, length + 1)))
            if b == branches - 1:
                for j in np.flatnonzero(y[i]):
                    start = rng.integers(0, len(s) - len(motifs[j]))
                    s = s[:start] + motifs[j] + s[start + len(motifs[j]) :]
            seqs[b].append(s)
    labels = y.astype(np.float32)
    labels = labels[:, 0] if len(motifs) == 1 else labels
    ids = np.array([f"s{i}" for i in range(n)])
    return SeqDataset(tuple(Seqs.from_strings(s) for s in seqs), labels, ids), labels


def test_kmer_spectrum_matches_a_direct_count(rng: np.random.Generator) -> None:
    seqs = ["ACGTNACGTT", "AAAA", "GATTACA", "NNNNNN", "ACGTACGTAC"]
    data = Seqs.from_strings(seqs)
    codes, mask = data.take(np.arange(len(seqs)))
    codes[1, 4:] = 0  # padding content must not matter
    for k in (1, 2, 3):
        spectrum = kmer_spectrum(codes, mask, k).toarray()
        assert spectrum.shape == (len(seqs), 4**k)
        for i, s in enumerate(seqs):
            expected = np.zeros(4**k)
            kmers = [s[j : j + k] for j in range(len(s) - k + 1) if "N" not in s[j : j + k]]
            for kmer in kmers:
                expected[int("".join(str("ACGT".index(c)) for c in kmer), 4)] += 1
            expected /= max(len(kmers), 1)
            np.testing.assert_allclose(spectrum[i], expected, rtol=1e-6, err_msg=f"{s} k={k}")
    assert decode(codes[2], 7) == "GATTACA"


def test_kmer_spectrum_chunks_agree(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = motif_dataset(rng, 50, (MOTIFS[0],))
    codes, mask = data.seqs[0].take(np.arange(50))
    whole = kmer_spectrum(codes, mask, 3).toarray()
    monkeypatch.setattr("models._kmer_features._CHUNK_CELLS", 7 * 64)  # 7 rows per chunk
    np.testing.assert_array_equal(kmer_spectrum(codes, mask, 3).toarray(), whole)


@pytest.mark.parametrize("plugin", SKLEARN, ids=lambda p: p.name)
def test_sklearn_finds_a_motif_and_pickles(plugin: ModelPlugin, rng: np.random.Generator) -> None:
    train, _ = motif_dataset(rng, 400, (MOTIFS[0],))
    test, y = motif_dataset(rng, 200, (MOTIFS[0],))
    estimator = plugin.fit_sklearn(train, test, IO_SPECS["seq_variable"], **tiny_hp(plugin))
    score = estimator.score(test)
    assert score.shape == (200,) and np.all((score >= 0) & (score <= 1))
    assert roc_auc_score(y, score) > 0.9
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(estimator)).score(test), score)


@pytest.mark.parametrize("plugin", SKLEARN, ids=lambda p: p.name)
def test_sklearn_uses_both_branches_of_a_pair(plugin: ModelPlugin, rng: np.random.Generator) -> None:
    """The motif sits in the second (promoter) branch only: a model reading one branch would score ~0.5."""
    train, _ = motif_dataset(rng, 400, (MOTIFS[0],), branches=2)
    test, y = motif_dataset(rng, 200, (MOTIFS[0],), branches=2)
    estimator = plugin.fit_sklearn(train, test, IO_SPECS["pair300x200"], **tiny_hp(plugin))
    assert roc_auc_score(y, estimator.score(test)) > 0.9


@pytest.mark.parametrize("plugin", SKLEARN, ids=lambda p: p.name)
def test_sklearn_multilabel(plugin: ModelPlugin, rng: np.random.Generator) -> None:
    io = IOSpec("seq", (0,), len(MOTIFS), "multilabel")
    train, _ = motif_dataset(rng, 400, MOTIFS)
    test, y = motif_dataset(rng, 200, MOTIFS)
    score = plugin.fit_sklearn(train, test, io, **tiny_hp(plugin)).score(test)
    assert score.shape == (200, len(MOTIFS))
    for j in range(len(MOTIFS)):
        assert roc_auc_score(y[:, j], score[:, j]) > 0.85, f"label {j}"
