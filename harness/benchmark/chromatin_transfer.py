"""Cross-cell-type transfer for chromatin profiles: train on some cell types' labels, score other cell types'.

A multi-label chromatin task whose label names carry a cell type and an assay:
- DeepSEA's `CELL_ASSAY_TREATMENT` names (`chromatin.deepsea`, and `chromatin.synthetic`, which uses the same
  naming). Cell types and treatments may contain `_` (`HSMM_emb_DNase_None`, `A549_CTCF_EtOH_0.02pct`): a name's cell
  type is its longest prefix that is also the cell type of a DNase label (`CELL_DNase_...`), else its first field;
  the next field is the assay. A cell type with several labels of one assay (treatments) is represented by the
  untreated one (`None`) where it exists, else the first.
- Basset's cell-type names (`chromatin.basset`; every label is DNase).
(`chromatin.peaks` sample sheets are not read here yet.)

The model trains on the training cell types' labels only (every assay they have, with the task's own train/val
splits), so the test cell types' labels are never seen. Then for each training cell type `a` and test cell type
`b`, the trained output for (`a`, assay) scores the test split against the label (`b`, assay): a train × test AUROC
and AUPRC matrix, each value with a seeded percentile-bootstrap 95 % CI. The diagonal (a test cell type that is also
a training cell type) is the within-cell-type reference.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.benchmark.cell_line_transfer import TransferResult, log_transfer, safe_key
from harness.config import ConfigError, TrainConfig, merge, train_config
from harness.data.split_task import SplitTask
from harness.evaluation.bootstrap import bootstrap_binary
from harness.evaluation.metrics import binary_metrics, multilabel_metrics
from harness.plugins import get_model, make_task
from harness.spec import Batch, Dataset, IOSpec, ModelPlugin, Task
from harness.tracking import store
from harness.training.fit import fit
from harness.training.run import model_inputs

BASSET_TASKS = ("chromatin.basset",)
UNTREATED = "None"
METRICS = ("auroc", "auprc")


@dataclass(frozen=True)
class Profile:
    """What one label measures: cell type, assay and treatment (`""` when the names carry none)."""

    cell: str
    assay: str
    treatment: str = ""


def profiles(task_name: str, names: Sequence[str]) -> list[Profile]:
    """Each label name of `task_name` as a `Profile` (see the module docstring); raises naming a bad label."""
    if not names:
        raise ConfigError(f"{task_name}: the task declares no label names, so its cell types are unknown")
    if task_name in BASSET_TASKS:
        return [Profile(name, "DNase") for name in names]
    dnase_cells = {n.split("_DNase_")[0] for n in names if "_DNase_" in n}
    out = []
    for name in names:
        fields = name.split("_")
        if len(fields) < 2:
            raise ConfigError(f"{task_name}: label {name!r} is not CELL_ASSAY[_TREATMENT], so it names no assay")
        cut = max([i for i in range(1, len(fields)) if "_".join(fields[:i]) in dnase_cells], default=1)
        out.append(Profile("_".join(fields[:cut]), fields[cut], "_".join(fields[cut + 1 :])))
    return out


def assay_columns(task_name: str, found: Sequence[Profile], assay: str, cells: Sequence[str]) -> dict[str, int]:
    """`{cell: label index}` of `assay` in each of `cells`; a clear error for an unknown cell or a missing assay."""
    by_cell: dict[str, dict[str, int]] = {}
    for j, p in enumerate(found):
        assays = by_cell.setdefault(p.cell, {})
        if p.assay not in assays or (p.treatment == UNTREATED and found[assays[p.assay]].treatment != UNTREATED):
            assays[p.assay] = j
    out = {}
    for cell in cells:
        if cell not in by_cell:
            near = difflib.get_close_matches(cell, list(by_cell), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise ConfigError(f"{task_name}: unknown cell type {cell!r}{hint}; known: {', '.join(sorted(by_cell))}")
        if assay not in by_cell[cell]:
            raise ConfigError(f"{task_name}: cell type {cell} has no {assay} label; its assays: "
                              f"{', '.join(sorted(by_cell[cell]))}")  # fmt: skip
        out[cell] = by_cell[cell][assay]
    return out


def parse_cell_list(text: str, what: str) -> list[str]:
    """`"K562,GM12878"` → `["K562", "GM12878"]`; raises on an empty or repeated list."""
    cells = [c.strip() for c in text.split(",") if c.strip()]
    if not cells:
        raise ConfigError(f"{what}: no cell types in {text!r}; give a comma-separated list such as K562,GM12878")
    if len(set(cells)) < len(cells):
        raise ConfigError(f"{what}: a cell type is given twice in {text!r}")
    return cells


class LabelColumns(Dataset):
    """A split with only the label columns `cols` (the inputs unchanged)."""

    def __init__(self, base: Dataset, cols: np.ndarray) -> None:
        self.base, self.cols = base, cols

    def __len__(self) -> int:
        return len(self.base)

    @property
    def labels(self) -> np.ndarray:
        return self.base.labels[:, self.cols]  # (N, len(cols))

    @property
    def ids(self) -> np.ndarray:
        return self.base.ids

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        batch = self.base.take(idx, reverse_complement)
        return Batch(batch.inputs, batch.y[:, self.cols])

    def digest(self) -> str:
        return f"{self.base.digest()}:{','.join(map(str, self.cols))}"


def training_task(task: Task, cols: np.ndarray, cells: Sequence[str]) -> SplitTask:
    """`task` restricted to the label columns `cols` (the training cell types'), same splits and inputs."""
    names = tuple(task.io.label_names[j] for j in cols)
    io = IOSpec(task.io.inputs, task.io.lengths, len(cols), "multilabel", names)
    splits = {name: LabelColumns(ds, cols) for name, ds in task.splits().items()}
    return SplitTask(f"{task.name}[{'+'.join(cells)}]", io, "auroc_median", task.split_protocol, task.synthetic,
                     lambda: splits, lambda y, s: multilabel_metrics(y, s)[0])  # fmt: skip


def chromatin_transfer(
    task: Task,
    plugin: ModelPlugin,
    hp: Mapping[str, Any],
    cfg: TrainConfig,
    assay: str,
    train_cells: Sequence[str],
    test_cells: Sequence[str],
    n_boot: int = 1000,
) -> TransferResult:
    """Train once on the training cell types' labels; the train × test matrices `auroc`, `auprc` and their CI bounds
    `auroc_low`, `auroc_high`, `auprc_low`, `auprc_high` (index `train_cell`, columns `test_cell`)."""
    if task.io.target != "multilabel":
        raise ConfigError(f"{task.name}: cross-cell-type transfer needs a multi-label chromatin task")
    found = profiles(task.name, task.io.label_names)
    outputs = assay_columns(task.name, found, assay, train_cells)
    targets = assay_columns(task.name, found, assay, test_cells)
    cols = np.array([j for j, p in enumerate(found) if p.cell in set(train_cells)])
    sub = training_task(task, cols, train_cells)
    fitted = fit(sub, plugin, hp, cfg, splits=model_inputs(sub, plugin, hp))
    test = model_inputs(sub, plugin, hp)["test"]
    scores = np.asarray(fitted.predictor.score(test)).reshape(len(test), -1)  # (N, len(cols))
    labels = task.splits()["test"].labels  # (N, C): every cell type's labels, read only for scoring
    values: dict[str, dict[str, dict[str, float]]] = {}
    for a in train_cells:
        s = scores[:, int(np.flatnonzero(cols == outputs[a])[0])]
        for b in test_cells:
            y = np.asarray(labels[:, targets[b]], dtype=np.float32)
            point = binary_metrics(y, s)
            ci = bootstrap_binary(y, s, n_boot=n_boot, seed=cfg.seed)
            for m in METRICS:
                for name, v in ((m, point[m]), (f"{m}_low", ci[m][0]), (f"{m}_high", ci[m][1])):
                    values.setdefault(name, {}).setdefault(a, {})[b] = v
    matrices = {name: pd.DataFrame.from_dict(rows, orient="index")[list(test_cells)] for name, rows in values.items()}
    for frame in matrices.values():
        frame.index.name, frame.columns.name = "train_cell", "test_cell"
    return TransferResult(matrices, {"+".join(train_cells): fitted})


def run_chromatin_transfer(
    model: str,
    task_name: str,
    assay: str,
    train_cells: Sequence[str],
    test_cells: Sequence[str],
    overrides: Mapping[str, Mapping[str, Any]],
    seed: int = 0,
    max_epochs: int | None = None,
    experiment: str = "regbench",
) -> tuple[TransferResult, str]:
    """Build the task, check the cell types and assay (before any data is loaded), run `chromatin_transfer` inside
    an MLflow run tagged `regbench.kind=transfer` (logged, and shown in `regbench report`, like the EPI transfer)."""
    plugin = get_model(model)
    hp = merge("model", plugin.defaults, overrides.get("model", {}))
    cfg = train_config(overrides.get("train", {}), seed=seed, max_epochs=max_epochs)
    data = dict(overrides.get("data", {}))
    task = make_task(task_name, data)
    found = profiles(task.name, task.io.label_names)
    assay_columns(task.name, found, assay, [*train_cells, *test_cells])
    tags = {"regbench.kind": "transfer", "model": model, "seed": seed, "primary_metric": "auroc", "task": task_name,
            "assay": assay, "train_cells": ",".join(train_cells), "test_cells": ",".join(test_cells)}  # fmt: skip
    name = f"transfer/{model}/{task_name}/{assay}/{'+'.join(train_cells)}/s{seed}"
    with store.run(experiment, name, tags) as log:
        log.params({**store.flatten_params("model", hp), **store.flatten_params("train", dataclasses.asdict(cfg)),
                    **store.flatten_params("data", data), safe_key("task.digest"): task.digest()})  # fmt: skip
        result = chromatin_transfer(task, plugin, hp, cfg, assay, train_cells, test_cells)
        log_transfer(log, result, model)
        return result, log.run_id
