"""Contract tests every registered model must pass (timm-style: one parametrised test over all plugins).

Torch models: each plugin's `tiny` variant × four task shapes, built through `harness.training.modeling.build_model`:
logits shape, finiteness, gradients on every parameter, padding invariance. Sklearn baselines: they find a
planted motif, use both branches of a pair task, handle multi-label targets and survive pickling.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE, decode
from harness.plugins import MODELS, load_plugins
from harness.spec import IOSpec, ModelPlugin
from harness.training.modeling import build_model
from models._kmer_features import kmer_spectrum

load_plugins()
PLUGINS = [e.obj for e in MODELS]
NEEDS_CHECKPOINT = "language model (probe or fine-tune) needs a checkpoint: tested in its own test files"
NEEDS_FEATURES = "feature-table model (no sequence input): tested on its feature task in its own test file"
SHORTCUT = "shortcut baseline (reads no motif by design, binary only): tested in tests/test_shortcuts.py"


def skip_reason(plugin: ModelPlugin) -> str | None:
    """Why a plugin cannot run on the random sequence batches of these tests, or None."""
    if plugin.featurize is not None or "checkpoint" in plugin.defaults:
        return NEEDS_CHECKPOINT
    if plugin.native_inputs == "features":
        return NEEDS_FEATURES
    if plugin.shortcut:
        return SHORTCUT
    return None


def contract(plugins: list[ModelPlugin]) -> list[Any]:
    """Plugins for the contract tests; those that need a checkpoint or a feature table are skipped with a reason."""
    return [pytest.param(p, id=p.name, marks=pytest.mark.skip(reason=skip_reason(p))) if skip_reason(p) else p
            for p in plugins]  # fmt: skip


TORCH = contract([p for p in PLUGINS if p.is_torch])
SKLEARN = contract([p for p in PLUGINS if p.fit_sklearn is not None])

IO_SPECS = {
    "seq200": IOSpec("seq", (200,), 1, "binary"),
    "seq_variable": IOSpec("seq", (0,), 1, "binary"),
    "pair300x200": IOSpec("seq_pair", (300, 200), 1, "binary"),
    "multilabel5": IOSpec("seq", (200,), 5, "multilabel"),
}
VARIABLE_WIDTH = 180  # longest sequence in the variable-length batch
MOTIFS = ("TGACTCA", "CCAATCG", "GGGCGGG")  # AP-1-like, and two arbitrary 7-mers


def tiny_hp(plugin: ModelPlugin) -> dict[str, Any]:
    return {**plugin.defaults, **plugin.tiny}


def random_inputs(io: IOSpec, rng: np.random.Generator, batch: int = 3) -> tuple[torch.Tensor, ...]:
    """Random codes/masks per branch: full length for fixed-length specs, lengths 50..180 for variable ones."""
    inputs: list[torch.Tensor] = []
    for length in io.lengths:
        width = length or VARIABLE_WIDTH
        lengths = np.full(batch, width) if length else np.r_[width, rng.integers(50, width, size=batch - 1)]
        codes = rng.integers(0, 4, size=(batch, width)).astype(np.uint8)
        mask = np.arange(width)[None, :] < lengths[:, None]
        codes[~mask] = N_CODE
        inputs += [torch.from_numpy(codes), torch.from_numpy(mask)]
    return tuple(inputs)


def build_or_skip(plugin: ModelPlugin, io: IOSpec, hp: dict[str, Any]) -> torch.nn.Module:
    """Build; a fixed-length model may refuse a variable-length task, but only with a clear error."""
    try:
        return build_model(plugin, io, hp)
    except ValueError as err:
        if 0 not in io.lengths:
            raise
        assert "length" in str(err).lower(), f"{plugin.name}: unclear error for variable length: {err}"
        pytest.skip(f"{plugin.name} needs fixed-length input: {err}")


def test_plugins_are_discovered() -> None:
    """Guards the parametrised tests below against an empty registry (e.g. `models` imported as a namespace)."""
    assert {"kmer_attention", "kmer_logreg"} <= set(MODELS.names()), f"registered: {MODELS.names()}"


@pytest.mark.parametrize("io_name", list(IO_SPECS))
@pytest.mark.parametrize("plugin", TORCH, ids=lambda p: p.name)
def test_forward_backward(plugin: ModelPlugin, io_name: str, rng: np.random.Generator) -> None:
    io = IO_SPECS[io_name]
    model = build_or_skip(plugin, io, tiny_hp(plugin))
    model.train()
    inputs = random_inputs(io, rng)
    logits = model(*inputs)  # (B, n_outputs)
    assert logits.shape == (3, io.n_outputs)
    assert torch.isfinite(logits).all()
    loss = logits.square().mean()
    aux = model.aux_loss()
    if aux is not None:
        loss = loss + aux
    loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = [n for n, p in trainable.items() if p.grad is None]
    assert not missing, f"{plugin.name}: parameters without gradient (unused?): {missing}"
    bad = [n for n, p in trainable.items() if not torch.isfinite(p.grad).all()]
    assert not bad, f"{plugin.name}: non-finite gradients in {bad}"
    assert any(p.grad.abs().sum() > 0 for n, p in trainable.items() if n.startswith("encoder."))


@pytest.mark.parametrize("plugin", TORCH, ids=lambda p: p.name)
def test_padding_does_not_change_predictions(plugin: ModelPlugin, rng: np.random.Generator) -> None:
    io = IO_SPECS["seq_variable"]
    model = build_or_skip(plugin, io, tiny_hp(plugin)).eval()
    codes, mask = random_inputs(io, rng, batch=4)
    pad = 37
    wider_codes = torch.cat([codes, torch.full((4, pad), N_CODE, dtype=codes.dtype)], dim=1)
    wider_mask = torch.cat([mask, torch.zeros(4, pad, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(wider_codes, wider_mask), model(codes, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_tiny_overrides_known_hyperparameters(plugin: ModelPlugin) -> None:
    assert set(plugin.tiny) <= set(plugin.defaults), (
        f"tiny keys not in defaults: {set(plugin.tiny) - set(plugin.defaults)}"
    )
    assert plugin.paper, f"{plugin.name}: name the paper"


class FakeTrial:
    """Optuna's define-by-run `suggest_*` API, always picking the lowest (or highest) value."""

    def __init__(self, high: bool) -> None:
        self.high = high
        self.names: list[str] = []

    def _record(self, name: str) -> None:
        assert name not in self.names, f"parameter {name!r} suggested twice"
        self.names.append(name)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        self._record(name)
        assert low <= high and (step == 1 or not log)
        return low + (high - low) // step * step if self.high else low

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self._record(name)
        assert low <= high and (low > 0 or not log)
        return high if self.high else low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self._record(name)
        return choices[-1] if self.high else choices[0]


@pytest.mark.parametrize("high", [False, True], ids=["low", "high"])
@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_search_space_extremes_build(plugin: ModelPlugin, high: bool, rng: np.random.Generator) -> None:
    trial = FakeTrial(high)
    space = plugin.search_space(trial)
    assert set(space) <= set(plugin.defaults), f"unknown keys {set(space) - set(plugin.defaults)}"
    assert sorted(space) == sorted(trial.names)
    if skip_reason(plugin):
        pytest.skip(skip_reason(plugin))
    hp = {**plugin.defaults, **space}
    if plugin.is_torch:
        io = IO_SPECS["seq200"]
        model = build_model(plugin, io, hp).eval()
        with torch.no_grad():
            assert model(*random_inputs(io, rng, batch=2)).shape == (2, 1)
    else:
        data, _ = motif_dataset(rng, 60, (MOTIFS[0],))
        estimator = plugin.fit_sklearn(data, data, IO_SPECS["seq_variable"], **hp)
        assert estimator.score(data).shape == (60,)


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
