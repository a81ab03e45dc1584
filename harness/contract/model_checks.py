"""Contract checks of a model plugin (`harness.spec.ModelPlugin`), on random batches and tiny synthetic tasks.

Torch plugins are built through `harness.training.modeling.build_model` (adapter and head included) on four task
shapes (`IO_SPECS`): the encoder's forward gives finite `(B, out_dim)`, gradients reach every trainable parameter,
padding does not change a sequence's output. Every plugin: hooks take exactly the keys of `defaults`; defaults,
`tiny` and both extremes of the search space lie inside the declared ranges; a 1-epoch tiny train on the synthetic
task of each input kind (`SYNTHETIC_TASKS`), whose model stored and reloaded as a run logs it scores the same.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import Settings, merge, train_config
from harness.contract import Check, CheckSkipped, expect
from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE
from harness.plugin_validation import hooks, signature_problems
from harness.plugins import make_task
from harness.spec import Dataset, IOSpec, ModelPlugin, Task
from harness.training.modeling import SequenceClassifier, build_model, check_compatible

IO_SPECS = {
    "seq200": IOSpec("seq", (200,), 1, "binary"),
    "seq_variable": IOSpec("seq", (0,), 1, "binary"),
    "pair300x200": IOSpec("seq_pair", (300, 200), 1, "binary"),
    "multilabel5": IOSpec("seq", (200,), 5, "multilabel"),
}
VARIABLE_WIDTH = 180  # longest sequence in a variable-length batch
PAD = 37  # extra padding columns of the padding check
SYNTHETIC_TASKS = {  # the synthetic task of each input kind (seq, seq_pair, multi-label seq), with tiny data options
    "enhancers.synthetic": {"n": 120},
    "epi.synthetic": {"enhancer_window": 200, "promoter_window": 150},
    "chromatin.synthetic": {"n": 300, "length": 200},
}
TINY_ROWS = 256  # rows per split of a tiny train (a random subset of a larger sequence split)
NEEDS_CHECKPOINT = "language model (probe or fine-tune) needs a checkpoint: tested in its own test files"
NEEDS_FEATURES = "feature-table model (no sequence input): tested on its feature task in its own test file"
SHORTCUT = "shortcut baseline (reads no motif by design, binary only): tested in tests/test_shortcuts.py"
NOT_TORCH = "not a torch model (fit_sklearn)"


def sequence_skip_reason(plugin: ModelPlugin) -> str | None:
    """Why a plugin cannot run on the random sequence batches of these checks, or None."""
    if plugin.featurize is not None or "checkpoint" in plugin.defaults:
        return NEEDS_CHECKPOINT
    if plugin.native_inputs == "features":
        return NEEDS_FEATURES
    if plugin.shortcut:
        return SHORTCUT
    return None


def tiny_hp(plugin: ModelPlugin) -> dict[str, Any]:
    return {**plugin.defaults, **plugin.tiny}


def random_inputs(io: IOSpec, rng: np.random.Generator, batch: int = 3) -> tuple[torch.Tensor, ...]:
    """Random `codes (B, L) uint8, mask (B, L) bool` per branch: full length for fixed-length specs, lengths 50..180
    (the first row the longest) for variable ones."""
    inputs: list[torch.Tensor] = []
    for length in io.lengths:
        width = length or VARIABLE_WIDTH
        lengths = np.full(batch, width) if length else np.r_[width, rng.integers(50, width, size=batch - 1)]
        codes = rng.integers(0, 4, size=(batch, width)).astype(np.uint8)
        mask = np.arange(width)[None, :] < lengths[:, None]
        codes[~mask] = N_CODE
        inputs += [torch.from_numpy(codes), torch.from_numpy(mask)]
    return tuple(inputs)


def random_dataset(rng: np.random.Generator, n: int, branches: int = 1, n_labels: int = 1) -> SeqDataset:
    """`n` random sequences of 60..100 bases per branch with random labels (both classes present)."""
    seqs = [Seqs.from_strings(["".join(rng.choice(list("ACGT"), size=rng.integers(60, 101))) for _ in range(n)])
            for _ in range(branches)]  # fmt: skip
    labels = (np.arange(n * n_labels).reshape(n, n_labels) % 2).astype(np.float32)
    labels = rng.permuted(labels, axis=0)
    return SeqDataset(tuple(seqs), labels[:, 0] if n_labels == 1 else labels, np.array([f"r{i}" for i in range(n)]))


def build(plugin: ModelPlugin, io: IOSpec, hp: Mapping[str, Any]) -> SequenceClassifier:
    """Build through the harness's adapter; a fixed-length model may refuse a variable-length task, but only with a
    clear error (then CheckSkipped)."""
    try:
        return build_model(plugin, io, hp)
    except ValueError as err:
        if 0 not in io.lengths:
            raise
        expect("length" in str(err).lower(), f"{plugin.name}: unclear error for variable length: {err}")
        raise CheckSkipped(f"needs fixed-length input: {err}") from None


def _require_sequence_torch(plugin: ModelPlugin) -> None:
    reason = NOT_TORCH if not plugin.is_torch else sequence_skip_reason(plugin)
    if reason:
        raise CheckSkipped(reason)


# --- settings ---------------------------------------------------------------------------------------------------------


def check_signature(plugin: ModelPlugin) -> str:
    expect(hooks(plugin), f"{plugin.name} has neither build nor fit_sklearn")
    problems = signature_problems(plugin)
    expect(not problems, "; ".join(problems))
    names = list(hooks(plugin))
    verb = "takes" if len(names) == 1 else "take"
    return f"{' and '.join(names)} {verb} exactly the {len(plugin.defaults)} keys of defaults"


def check_settings(plugin: ModelPlugin) -> str:
    """`defaults` is a `Settings` table whose defaults pass its ranges and rules; `tiny` overrides known keys with
    values of the default's type, inside the declared ranges."""
    defaults = plugin.defaults
    expect(isinstance(defaults, Settings), f"defaults is a {type(defaults).__name__}; declare it as "
           "harness.api.Settings({name: Setting(default, ...)}) so each value's range is known")  # fmt: skip
    assert isinstance(defaults, Settings)
    defaults.check("model", dict(defaults))
    unknown = sorted(set(plugin.tiny) - set(defaults))
    expect(not unknown, f"tiny keys that are not in defaults: {unknown}")
    wrong = {k: (v, defaults[k]) for k, v in plugin.tiny.items() if type(v) is not type(defaults[k])}
    expect(not wrong, f"tiny value vs default of a different type: {wrong}")
    merge("model", defaults, plugin.tiny)
    return f"{len(defaults)} defaults and tiny {dict(plugin.tiny)} inside the declared ranges"


class FakeTrial:
    """Optuna's define-by-run `suggest_*` API, always picking the lowest (or highest) value."""

    def __init__(self, high: bool) -> None:
        self.high = high
        self.names: list[str] = []

    def _record(self, name: str) -> None:
        expect(name not in self.names, f"parameter {name!r} suggested twice")
        self.names.append(name)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        self._record(name)
        expect(low <= high and (step == 1 or not log), f"suggest_int({name!r}, {low}, {high}, step={step}, log={log})")
        return low + (high - low) // step * step if self.high else low

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self._record(name)
        expect(low <= high and (low > 0 or not log), f"suggest_float({name!r}, {low}, {high}, log={log})")
        return high if self.high else low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self._record(name)
        return choices[-1] if self.high else choices[0]


def suggest(plugin: ModelPlugin, high: bool) -> dict[str, Any]:
    """The search space at its lowest (or highest) values: known keys, each suggested once, inside the ranges."""
    trial = FakeTrial(high)
    space = plugin.search_space(trial)
    expect(
        set(space) <= set(plugin.defaults), f"search space keys not in defaults: {set(space) - set(plugin.defaults)}"
    )
    expect(sorted(space) == sorted(trial.names), f"search space returns {sorted(space)}, suggested {trial.names}")
    merge("model", plugin.defaults, space)
    return space


def check_builds_with(plugin: ModelPlugin, hp: Mapping[str, Any], rng: np.random.Generator) -> str:
    """The plugin builds with `hp` and scores: a torch model's logits are `(2, 1)` on two 200-base sequences; a
    sklearn model fitted on 60 random sequences scores `(60,)`."""
    if plugin.is_torch:
        io = IO_SPECS["seq200"]
        model = build_model(plugin, io, hp).eval()
        with torch.no_grad():
            shape = tuple(model(*random_inputs(io, rng, batch=2)).shape)
        expect(shape == (2, 1), f"logits {shape} on a batch of 2, expected (2, 1)")
        return "builds, logits (2, 1)"
    assert plugin.fit_sklearn is not None
    data = random_dataset(rng, 60)
    shape = plugin.fit_sklearn(data, data, IO_SPECS["seq_variable"], **hp).score(data).shape
    expect(shape == (60,), f"scores {shape} for 60 rows, expected (60,)")
    return "fits, scores (60,)"


def check_search_space(plugin: ModelPlugin, rng: np.random.Generator) -> str:
    """Both extremes of the search space inside the declared ranges, and the model built with each."""
    details = []
    for high in (False, True):
        hp = {**plugin.defaults, **suggest(plugin, high)}
        reason = sequence_skip_reason(plugin)
        built = f"not built ({reason.split(':')[0]})" if reason else check_builds_with(plugin, hp, rng)
        details.append(f"{'high' if high else 'low'}: {built}")
    return "inside the ranges; " + "; ".join(details)


# --- torch forward and backward ----------------------------------------------------------------------------------


def check_forward(plugin: ModelPlugin, io: IOSpec, rng: np.random.Generator) -> str:
    """The encoder maps a random batch to finite `(B, out_dim)`, the classifier to `(B, n_outputs)` logits."""
    _require_sequence_torch(plugin)
    model = build(plugin, io, tiny_hp(plugin)).train()
    inputs = random_inputs(io, rng)
    batch = inputs[0].shape[0]
    encoder_inputs = inputs[:2] if model.siamese else inputs  # the siamese adapter runs the encoder per branch
    features = model.encoder(*encoder_inputs)
    out_dim = model.encoder.out_dim
    expect(tuple(features.shape) == (batch, out_dim), f"{plugin.name}: forward returned shape "
           f"{tuple(features.shape)}, expected (B, out_dim) = ({batch}, {out_dim})")  # fmt: skip
    expect(torch.isfinite(features).all(), f"{plugin.name}: forward gave {int((~torch.isfinite(features)).sum())} "
           f"non-finite values in {tuple(features.shape)}")  # fmt: skip
    logits = model(*inputs)  # (B, n_outputs)
    expect(logits.shape == (batch, io.n_outputs), f"logits {tuple(logits.shape)}, expected ({batch}, {io.n_outputs})")
    expect(torch.isfinite(logits).all(), f"{plugin.name}: non-finite logits")
    return f"features ({batch}, {out_dim}), logits ({batch}, {io.n_outputs}), finite"


def check_gradients(plugin: ModelPlugin, io: IOSpec, rng: np.random.Generator) -> str:
    """One backward pass reaches every trainable parameter with finite gradients, some of the encoder's non-zero."""
    _require_sequence_torch(plugin)
    model = build(plugin, io, tiny_hp(plugin)).train()
    loss = model(*random_inputs(io, rng)).square().mean()
    aux = model.aux_loss()
    if aux is not None:
        loss = loss + aux
    loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = [n for n, p in trainable.items() if p.grad is None]
    expect(not missing, f"{plugin.name}: parameters without gradient (unused?): {missing}")
    bad = [n for n, p in trainable.items() if not torch.isfinite(p.grad).all()]
    expect(not bad, f"{plugin.name}: non-finite gradients in {bad}")
    expect(any(p.grad.abs().sum() > 0 for n, p in trainable.items() if n.startswith("encoder.")),
           f"{plugin.name}: every encoder gradient is zero")  # fmt: skip
    return f"{len(trainable)} trainable tensors, all with finite gradients"


def check_padding(plugin: ModelPlugin, rng: np.random.Generator) -> str:
    """Extra padding (N codes, mask False) after a variable-length batch leaves every row's logits unchanged."""
    _require_sequence_torch(plugin)
    model = build(plugin, IO_SPECS["seq_variable"], tiny_hp(plugin)).eval()
    codes, mask = random_inputs(IO_SPECS["seq_variable"], rng, batch=4)
    wider_codes = torch.cat([codes, torch.full((4, PAD), N_CODE, dtype=codes.dtype)], dim=1)
    wider_mask = torch.cat([mask, torch.zeros(4, PAD, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        wide, narrow = model(wider_codes, wider_mask), model(codes, mask)
    diff = float((wide - narrow).abs().max())
    expect(torch.allclose(wide, narrow, atol=1e-5, rtol=1e-5),
           f"{PAD} more padding columns change the logits by up to {diff:.3g} (allowed 1e-5)")  # fmt: skip
    return f"{PAD} more padding columns change the logits by {diff:.1g}"


# --- tiny train and stored state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A 1-epoch tiny fit on a synthetic task: the task, the splits it used, the settings and the fitted predictor."""

    task: Task
    splits: Mapping[str, Dataset]
    hp: dict[str, Any]
    train: dict[str, Any]
    predictor: Any


def synthetic_task(name: str) -> Task:
    """The tiny synthetic task `name` (`SYNTHETIC_TASKS`), splits loaded."""
    task = make_task(name, SYNTHETIC_TASKS[name])
    task.splits()
    return task


def tiny_splits(task: Task, seed: int = 0) -> dict[str, Dataset]:
    """The task's splits, each sequence split cut to a random `TINY_ROWS` rows (kept in their order)."""
    rng = np.random.default_rng(seed)
    out: dict[str, Dataset] = {}
    for name, ds in task.splits().items():
        if isinstance(ds, SeqDataset) and len(ds) > TINY_ROWS:
            ds = ds.subset(np.sort(rng.choice(len(ds), TINY_ROWS, replace=False)))
        out[name] = ds
    return out


def tiny_train(plugin: ModelPlugin, task: Task | str) -> Trained:
    """Fit the tiny variant for one epoch (batch 32, CPU) on a synthetic task (built, or its name: built here with
    `SYNTHETIC_TASKS`' options); CheckSkipped when the model cannot run on it (input kind, `check_io`, a missing
    prerequisite such as a checkpoint)."""
    from harness.training.fit import fit
    from harness.training.modeling import IncompatibleError

    hp = tiny_hp(plugin)
    if plugin.native_inputs == "features":
        raise CheckSkipped(f"{NEEDS_FEATURES.split(':')[0]}: no synthetic task gives a feature table")
    task = synthetic_task(task) if isinstance(task, str) else task
    try:
        check_compatible(plugin, task.io, hp, task.name)
    except IncompatibleError as err:
        raise CheckSkipped(str(err)) from None
    train = {**plugin.train_defaults, "max_epochs": 1, "batch_size": 32, "progress": False, "device": "cpu"}
    splits = tiny_splits(task)
    result = fit(task, plugin, hp, train_config(train), splits=splits)
    expect(np.isfinite(result.best_val), f"val {task.primary_metric} after one epoch is {result.best_val}")
    return Trained(task, splits, hp, dataclasses.asdict(train_config(train)), result.predictor)


def check_scores(trained: Trained, dataset: Dataset) -> np.ndarray:
    """The predictor's scores of `dataset`: `(N,)` or `(N, C)` probabilities."""
    io = trained.task.io
    scores = np.asarray(trained.predictor.score(dataset))
    shape = (len(dataset),) if io.n_outputs == 1 else (len(dataset), io.n_outputs)
    expect(scores.shape == shape, f"scores {scores.shape} for {len(dataset)} rows, expected {shape}")
    expect(np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all(), "scores outside [0, 1]")
    return scores


def check_train(trained: Trained) -> str:
    test = trained.splits["test"]
    scores = check_scores(trained, test)
    rows = len(trained.splits["train"])
    return f"1 epoch on {rows} rows; test scores {scores.shape} in [0, 1]"


def check_state(plugin: ModelPlugin, trained: Trained) -> str:
    """The fitted model stored as a run logs it (`harness.tracking.logged_model`) and loaded back scores the test
    split identically."""
    from harness.tracking import logged_model

    test = trained.splits["test"]
    before = check_scores(trained, test)
    meta = {"task": trained.task.name, "model": plugin.name, "hp": trained.hp, "data": {}, "train": trained.train,
            "io": dataclasses.asdict(trained.task.io)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="regbench-check-") as folder:
        full = logged_model.save(trained.predictor, meta, Path(folder))
        after = np.asarray(logged_model.as_predictor(logged_model.load(Path(folder)), full, "cpu").score(test))
    expect(after.shape == before.shape, f"reloaded scores {after.shape}, before {before.shape}")
    diff = float(np.abs(after - before).max(initial=0))
    expect(np.array_equal(after, before), f"reloaded model scores differ by up to {diff:.3g}")
    return f"saved ({full['kind']}) and reloaded: {len(test)} identical test scores"


def model_checks(plugin: ModelPlugin, seed: int = 0) -> list[Check]:
    """Every check of one model plugin, in order, for `harness.contract.run`."""
    rng = np.random.default_rng(seed)
    checks: list[Check] = [
        ("signature", lambda: check_signature(plugin)),
        ("settings", lambda: check_settings(plugin)),
        ("search space", lambda: check_search_space(plugin, rng)),
    ]
    for name, io in IO_SPECS.items():
        checks.append((f"forward[{name}]", functools.partial(check_forward, plugin, io, rng)))
        checks.append((f"gradients[{name}]", functools.partial(check_gradients, plugin, io, rng)))
    checks.append(("padding", lambda: check_padding(plugin, rng)))
    for task in SYNTHETIC_TASKS:
        trained: dict[str, Trained] = {}

        def train(task: str = task, trained: dict[str, Trained] = trained) -> str:
            fit = tiny_train(plugin, task)
            detail = check_train(fit)
            trained["fit"] = fit  # the state check reloads a model that passed
            return detail

        def state(task: str = task, trained: dict[str, Trained] = trained) -> str:
            if "fit" not in trained:
                raise CheckSkipped(f"train[{task}] did not pass")
            return check_state(plugin, trained["fit"])

        checks += [(f"train[{task}]", train), (f"state[{task}]", state)]
    return checks
