"""Study files: a YAML cross of tasks × models × seeds, with budgets and fixed overrides.

```yaml
name: smoke                                      # MLflow experiment name (default: the file name)
tasks: [enhancers.synthetic]                     # registry names
models: [kmer_logreg, kmer_attention]
seeds: [0]
trials: 2                                        # tuning trials per cell
max_epochs: 2                                    # per trial and for the refit
concurrency: 1                                   # trials running at once
workers_per_trial: 1                             # optional: Ray Train workers per trial and refit (torch models)
tiny: true                                       # optional: every model's `tiny` variant (default false)
shortcuts: false                                 # optional: leave out the shortcut baselines (default true)
splits: [chromosome, random]                     # optional: every cell once per data.split protocol
set: {data.n: 300, train.batch_size: 32}         # overrides for every cell
task_set: {enhancers.synthetic: {data.n: 400}}   # per task (wins over `set`)
model_set: {kmer_attention: {model.d_model: 16}} # per model (wins over both)
variants:                                        # optional: variant sets every refit is scored on
  - {name: snps, path: snps.vcf.gz, genome: hg38.fa}
```
`tiny: true` applies each model's `tiny` overrides (`ModelPlugin.tiny`, as `model.*` settings) under `set`,
`task_set` and `model_set`, which win over them; a tiny setting is fixed like any other, so it is not tuned.
Every task's board also gets the registered shortcut baselines (`ModelPlugin.shortcut`: GC content + length, length,
EPI distance, element propensity) that accept the task, unless `shortcuts: false` or they are listed in `models`.
`splits` crosses every cell with `data.split` (tasks that take it: `epi.*`, `epi.targetfinder_nhek`), so one
benchmark scores the same task × model under several split protocols and the leaderboard puts them side by side.
`variants` (`name`, `path`, optional `genome`; paths relative to the study file; `name` defaults to the file's stem):
after the cells, every refit on the leaderboard is scored on each set (`harness.benchmark.variant_board`); each
file is read and checked here.
Values are registry names and scalars only. `load_study` checks everything against the live registries, the
model defaults, `TrainConfig` and the task factories before anything runs; every error names the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.config import NAMESPACES, ConfigError, merge, parse_value, train_config
from harness.limits import COUNTS, MAX_NESTING, WORKERS_PER_TRIAL, LimitError, check_name, too_deep
from harness.plugin_sources import PluginError
from harness.plugins import MODELS, TASKS, load_plugins, make_task, shortcut_models
from harness.registry import Registry, UnknownNameError
from harness.tuning.search_space import searched_names

KEYS = ("name", "description", "tasks", "models", "seeds", "splits", "trials", "max_epochs", "concurrency",
        "cpus_per_trial", "gpus_per_trial", "tiny", "shortcuts", "set", "task_set", "model_set", "plugins",
        "variants", "workers_per_trial")  # fmt: skip
RESERVED = {"train.max_epochs": "the top-level max_epochs", "train.seed": "the top-level seeds list"}
SPLIT_KEY = "data.split"


class StudyFileError(ConfigError):
    """A bad study file; the message starts with `path:line:`."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = path, line


@dataclass(frozen=True)
class Override:
    """One `namespace.key: value` entry and the line it was written on."""

    key: str
    value: Any
    line: int


@dataclass(frozen=True)
class VariantSet:
    """One `variants` entry: a variant file (`harness.interpret.variant_files`), its genome ("" for sequences)."""

    name: str
    path: str
    genome: str
    line: int


def cell_where(task: str, split: str) -> str:
    """`task`, or `task[split]` for a cell of a study that crosses splits."""
    return f"{task}[{split}]" if split else task


@dataclass(frozen=True)
class Cell:
    """One (task, split, model) of the cross, with its effective overrides `{namespace: {key: value}}` and the
    evaluation `seeds` its best configuration is refit with; `split` is the `data.split` the study file's `splits`
    gave this cell, "" when it has no `splits`. The search runs once, seeded with the first seed."""

    task: str
    model: str
    seeds: tuple[int, ...]
    overrides: Mapping[str, Mapping[str, Any]]
    split: str = ""

    @property
    def seed(self) -> int:
        """The search's seed (the sampler's, and the trials' training seed): the first evaluation seed."""
        return self.seeds[0]

    @property
    def where(self) -> str:
        """`task`, or `task[split]` when the study crosses splits (names the cell's runs and Optuna study)."""
        return cell_where(self.task, self.split)

    @property
    def label(self) -> str:
        """`task × model` (task as in `where`), for messages and progress bars."""
        return f"{self.where} × {self.model}"


@dataclass(frozen=True)
class StudyFile:
    """A validated study file."""

    path: Path
    name: str
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    trials: int = 8
    max_epochs: int = 10
    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = WORKERS_PER_TRIAL
    description: str = ""
    fixed: tuple[Override, ...] = ()
    per_task: Mapping[str, tuple[Override, ...]] = field(default_factory=dict)
    per_model: Mapping[str, tuple[Override, ...]] = field(default_factory=dict)
    lines: Mapping[str, int] = field(default_factory=dict)  # line of each top-level key and each task/model entry
    splits: tuple[Override, ...] = ()  # one `data.split` override per `splits` entry, in file order
    tiny: bool = False  # apply each model's `tiny` overrides under the file's own settings
    shortcuts: bool = True  # add the shortcut baselines that accept each task to its board
    plugins: tuple[str, ...] = ()  # outside plugin files or folders, resolved against the study file's folder
    variants: tuple[VariantSet, ...] = ()  # variant sets every refit is scored on after the cells

    def tiny_overrides(self, model: str) -> tuple[Override, ...]:
        """The model's `tiny` settings as `model.*` overrides on the `tiny` key's line; none unless `tiny: true`."""
        if not self.tiny:
            return ()
        return tuple(Override(f"model.{k}", v, self.lines["tiny"]) for k, v in MODELS.get(model).tiny.items())

    def effective(self, task: str, model: str, split: Override | None = None) -> dict[str, Override]:
        """The overrides of one cell by key: the model's tiny settings (with `tiny: true`), `set`, `task_set[task]`,
        `model_set[model]`, then the split (last wins; a study with `splits` may not set `data.split` elsewhere).
        A shortcut baseline added to the board (not listed in `models`) takes no `model.*` settings from `set`."""
        out: dict[str, Override] = {}
        last = (split,) if split else ()
        fixed = self.fixed if model in self.models else tuple(e for e in self.fixed if not e.key.startswith("model."))
        groups = (self.tiny_overrides(model), fixed, self.per_task.get(task, ()), self.per_model.get(model, ()))
        for entry in (*(e for group in groups for e in group), *last):
            out[entry.key] = entry
        return out

    def overrides(self, task: str, model: str, split: Override | None = None) -> dict[str, dict[str, Any]]:
        """`{"model": {...}, "train": {...}, "data": {...}}` for one cell."""
        nested: dict[str, dict[str, Any]] = {ns: {} for ns in NAMESPACES}
        for key, entry in self.effective(task, model, split).items():
            ns, _, name = key.partition(".")
            nested[ns][name] = entry.value
        return nested

    def models_of(self, task: str) -> tuple[str, ...]:
        """The task's board: the listed models, then (with `shortcuts`) every unlisted shortcut baseline whose
        `check_io` accepts the task."""
        if not self.shortcuts:
            return self.models
        io = make_task(task, self.overrides(task, self.models[0])["data"]).io  # builds the task, loads no data
        accepts = {m: MODELS.get(m).check_io for m in shortcut_models() if m not in self.models}
        extra = [m for m, check in accepts.items() if check is None or check(io) is None]
        return (*self.models, *extra)

    def cells(self) -> list[Cell]:
        """Every (task, split, model), task-major in file order, each with all of the study's seeds."""
        return [
            Cell(t, m, self.seeds, self.overrides(t, m, split), str(split.value) if split else "")
            for t in self.tasks for split in (self.splits or (None,)) for m in self.models_of(t)
        ]  # fmt: skip


def load_study(path: str | Path) -> StudyFile:
    """Parse and validate a study file; raises `StudyFileError` naming the file and line of the first problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise FileNotFoundError(f"study file {path}: {err.strerror or err}") from None
    deep = too_deep(text)
    if deep:
        raise StudyFileError(path, deep, f"nested deeper than {MAX_NESTING} levels")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise StudyFileError(path, mark.line + 1 if mark else 1, f"not valid YAML: {err}") from None
    except RecursionError:  # block-style nesting thousands of levels deep
        raise StudyFileError(path, 1, f"nested deeper than {MAX_NESTING} levels") from None
    study = _Parser(path).parse(root)
    for task in study.tasks:
        for split in study.splits or (None,):
            for model in study.models:  # first: these errors (and the task's own) name the file's lines
                _check_cell(study, task, model, split)
            for model in study.models_of(task)[len(study.models) :]:
                _check_cell(study, task, model, split)
    return study


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Parser:
    """Turns the composed YAML node tree into a `StudyFile`, raising at the first bad node."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        load_plugins()

    def fail(self, node: yaml.Node | int, message: str) -> StudyFileError:
        return StudyFileError(self.path, node if isinstance(node, int) else _line(node), message)

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping of key: value")
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: keys must be plain names")
            if key.value in seen:
                raise self.fail(key, f"{what}: duplicate key {key.value!r} (first on line {seen[key.value]})")
            seen[key.value] = _line(key)
        return node.value

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a scalar (number, string or boolean), not a list or mapping")
        return parse_value(node.value) if node.style is None else node.value

    def integer(self, node: yaml.Node, what: str, limits: str) -> int:
        """An integer within `COUNTS[limits]` (YAML reads only ASCII digits as numbers)."""
        value = self.scalar(node, what)
        low, high = COUNTS[limits]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(node, f"{what}={node.value!r}: must be an integer in [{low}, {high}]")
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node, what)
        if not isinstance(value, bool):
            quoted = " (unquoted)" if node.style else ""
            raise self.fail(node, f"{what}={node.value!r}: must be true or false{quoted}")
        return value

    def number(self, node: yaml.Node, what: str, positive: bool) -> float:
        value = self.scalar(node, what)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (positive and value == 0):
            raise self.fail(node, f"{what}={node.value!r}: must be a number {'> 0' if positive else '>= 0'}")
        return float(value)

    def plugins(self, node: yaml.Node) -> tuple[str, ...]:
        """Load each listed plugin (a path relative to the study file) before any name is resolved."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "plugins must be a list of .py files or package folders (relative to this file)")
        out = []
        for item in node.value:
            path = self.path.parent / str(self.scalar(item, "plugins entry"))
            try:
                load_plugins([str(path)])
            except PluginError as err:
                raise self.fail(item, str(err)) from None
            out.append(str(path))
        return tuple(out)

    def names(self, node: yaml.Node, what: str, registry: Registry[Any]) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, f"{what} must be a non-empty list of {registry.kind} names")
        out: list[str] = []
        for item in node.value:
            name = self.registered(item, f"{what} entry", registry)
            if name in out:
                raise self.fail(item, f"{what}: {name!r} is listed twice")
            self.lines[name] = _line(item)
            out.append(name)
        return tuple(out)

    def registered(self, node: yaml.Node, what: str, registry: Registry[Any]) -> str:
        name = self.scalar(node, what)
        try:
            registry.entry(str(name))
        except UnknownNameError as err:
            raise self.fail(node, str(err)) from None
        return str(name)

    def overrides(self, node: yaml.Node, what: str) -> tuple[Override, ...]:
        out: list[Override] = []
        for key, value in self.mapping(node, what):
            ns, dot, name = key.value.partition(".")
            if not dot or not name or ns not in NAMESPACES:
                raise self.fail(key, f"{what}: {key.value!r} must be NAMESPACE.KEY with NAMESPACE one of "
                                     f"{', '.join(NAMESPACES)}, e.g. train.lr or data.n")  # fmt: skip
            if key.value in RESERVED:
                raise self.fail(key, f"{what}: {key.value} is set by {RESERVED[key.value]}, not an override")
            out.append(Override(key.value, self.scalar(value, f"{what}: {key.value}"), _line(key)))
        return tuple(out)

    def per_name(self, node: yaml.Node, what: str, registry: Registry[Any], listed: tuple[str, ...]) -> dict:
        out: dict[str, tuple[Override, ...]] = {}
        for key, value in self.mapping(node, what):
            name = self.registered(key, f"{what} key", registry)
            if name not in listed:
                raise self.fail(key, f"{what}: {registry.kind} {name!r} is not in this study's {registry.kind}s list")
            out[name] = self.overrides(value, f"{what}.{name}")
        return out

    def parse(self, root: yaml.Node | None) -> StudyFile:
        if root is None:
            raise self.fail(1, "empty study file; expected a mapping with at least tasks and models")
        fields = dict(self.mapping(root, "study file"))
        nodes: dict[str, yaml.Node] = {}
        for key, value in fields.items():
            if key.value not in KEYS:
                raise self.fail(key, f"unknown key {key.value!r}; valid keys: {', '.join(KEYS)}")
            nodes[key.value] = value
            self.lines[key.value] = _line(key)
        for required in ("tasks", "models"):
            if required not in nodes:
                raise self.fail(root, f"missing required key {required!r}")
        plugins = self.plugins(nodes["plugins"]) if "plugins" in nodes else ()
        tasks = self.names(nodes["tasks"], "tasks", TASKS)
        models = self.names(nodes["models"], "models", MODELS)
        values: dict[str, Any] = {"tasks": tasks, "models": models, "seeds": (0,), "plugins": plugins}
        if "seeds" in nodes:
            values["seeds"] = self.seeds(nodes["seeds"])
        for key in ("trials", "max_epochs", "concurrency", "workers_per_trial"):
            if key in nodes:
                values[key] = self.integer(nodes[key], key, key)
        for key in ("cpus_per_trial", "gpus_per_trial"):
            if key in nodes:
                values[key] = self.number(nodes[key], key, positive=key == "cpus_per_trial")
        for key in ("name", "description"):
            if key in nodes:
                values[key] = str(self.scalar(nodes[key], key))
        for key in ("tiny", "shortcuts"):
            if key in nodes:
                values[key] = self.boolean(nodes[key], key)
        try:
            check_name(values.setdefault("name", self.path.stem), "name (the MLflow experiment)")
        except LimitError as err:
            raise self.fail(nodes.get("name", root), str(err)) from None
        if "set" in nodes:
            values["fixed"] = self.overrides(nodes["set"], "set")
        if "task_set" in nodes:
            values["per_task"] = self.per_name(nodes["task_set"], "task_set", TASKS, tasks)
        if "model_set" in nodes:
            values["per_model"] = self.per_name(nodes["model_set"], "model_set", MODELS, models)
        if "splits" in nodes:
            values["splits"] = self.splits(nodes["splits"], values)
        if "variants" in nodes:
            values["variants"] = self.variant_sets(nodes["variants"])
        return StudyFile(path=self.path, lines=dict(self.lines), **values)

    def splits(self, node: yaml.Node, values: Mapping[str, Any]) -> tuple[Override, ...]:
        """The `splits` list as `data.split` overrides; refused when `data.split` is also set elsewhere."""
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, "splits must be a non-empty list of data.split values, e.g. [chromosome, random]")
        out: list[Override] = []
        for item in node.value:
            value = str(self.scalar(item, "splits entry"))
            if value in [o.value for o in out]:
                raise self.fail(item, f"splits: {value!r} is listed twice")
            out.append(Override(SPLIT_KEY, value, _line(item)))
        groups = [values.get("fixed", ()), *values.get("per_task", {}).values(), *values.get("per_model", {}).values()]
        for entry in (e for group in groups for e in group if e.key == SPLIT_KEY):
            raise self.fail(entry.line, f"{SPLIT_KEY} is set here and by splits (line {_line(node)}); keep one")
        return tuple(out)

    def variant_sets(self, node: yaml.Node) -> tuple[VariantSet, ...]:
        """The `variants` list, each file read and checked now (`read_variant_table`), errors on its entry's line."""
        from harness.interpret.variant_files import read_variant_table

        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, "variants must be a non-empty list of {name, path, genome} mappings")
        out: list[VariantSet] = []
        for item in node.value:
            fields = {
                k.value: self.scalar(v, f"variants entry {k.value}") for k, v in self.mapping(item, "variants entry")
            }
            unknown = ", ".join(sorted(set(fields) - {"name", "path", "genome"}))
            if unknown or "path" not in fields:
                raise self.fail(item, f"variants entry: {unknown or 'no path'}: the keys are path, name, genome")
            path, genome = (str(self.path.parent / str(fields[k])) if fields.get(k) else "" for k in ("path", "genome"))
            name = str(fields.get("name") or Path(path).name.split(".")[0])
            if name in [v.name for v in out]:
                raise self.fail(item, f"variants: name {name!r} is listed twice")
            try:
                for file in filter(None, (path, genome)):
                    if not Path(file).is_file():
                        raise ValueError(f"{file}: no such file")
                read_variant_table(path, genomic=bool(genome))
            except ValueError as err:
                raise self.fail(item, f"variants entry {name!r}: {err}") from None
            out.append(VariantSet(name, path, genome, _line(item)))
        return tuple(out)

    def seeds(self, node: yaml.Node) -> tuple[int, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, "seeds must be a non-empty list of integers, e.g. [0, 1, 2]")
        seeds = [self.integer(item, "seeds entry", "seed") for item in node.value]
        if len(set(seeds)) != len(seeds):
            raise self.fail(node, f"seeds {seeds} contain a duplicate")
        return tuple(seeds)


def _check_cell(study: StudyFile, task: str, model: str, split: Override | None) -> None:
    """Resolve one cell's settings as a run would; blame the override the error names, else the task entry."""
    effective = study.effective(task, model, split)
    nested = study.overrides(task, model, split)
    try:
        merge("model", MODELS.get(model).defaults, nested["model"])
        train_config(nested["train"], max_epochs=study.max_epochs)
        make_task(task, nested["data"])
    except ValueError as err:
        blamed = [e.line for key, e in effective.items() if re.search(rf"{re.escape(key)}\b", str(err))]
        line = blamed[0] if blamed else study.lines[task]
        where = cell_where(task, str(split.value) if split else "")
        raise StudyFileError(study.path, line, f"cell {where} × {model}: {err}") from None
    try:
        searched_names(MODELS.get(model), nested)
    except ConfigError as err:  # the plugin's search space leaves its declared ranges: blame the model entry
        raise StudyFileError(study.path, study.lines.get(model, study.lines[task]), f"model {model}: {err}") from None
