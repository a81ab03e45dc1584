"""Multi-label chromatin-profile tasks (primary metric: median per-label AUROC).

Registered: `chromatin.deepsea` (DeepSEA bundle: 919 labels, 1000 bp), `chromatin.basset` (Basset HDF5: 164 DNase
cell types, 600 bp) and `chromatin.synthetic` (planted motifs written in either real format, then read back by the
same readers). Splits are the files' own train/valid/test. Metrics:
`harness.evaluation.metrics.multilabel_metrics` overall and per label group (`task.label_groups`, e.g.
`auroc_median_dnase`); `harness.evaluation.scoring` adds bootstrap CIs of the medians. Every split of every source
is converted once into the memory-mapped cache of `tasks._chromatin_cache` (read by random index without loading
the set); the readers of `tasks._chromatin_formats` are what the conversion reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from harness.config import Setting, Settings, merge
from harness.data.split_cache import locked
from harness.data.split_task import SplitTask
from harness.evaluation.metrics import multilabel_metrics
from harness.paths import DataNotFoundError, cache_dir, data_root, require_data
from harness.plugins import TASKS
from harness.spec import Dataset, IOSpec
from tasks import _synthetic_chromatin as synthetic
from tasks._chromatin_cache import MemmapSeqDataset, cached_split
from tasks._chromatin_formats import BASSET, BASSET_SPLITS, DEEPSEA_SPLITS, HDF5Blocks, check_basset, deepsea_blocks

PRIMARY = "auroc_median"
DEEPSEA_URL = "http://deepsea.princeton.edu/media/code/deepsea_train_bundle.v0.9.tar.gz"
DEEPSEA_NAMES = "label_names/deepsea_919_predictor_names.txt"
BASSET_NAMES = "label_names/basset_164_target_labels.txt"
DEEPSEA_ID_PREFIX = {"train": "trainxdata", "val": "val", "test": "test"}  # ids `prefix:row`, as before the cache
DEEPSEA_GROUPS = {"dnase": (0, 125), "tf": (125, 815), "histone": (815, 919)}  # 0-based [start, stop) rows


@dataclass
class ChromatinTask(SplitTask):
    """A multi-label `SplitTask` whose labels fall into named groups (read by `harness.evaluation.scoring`)."""

    label_groups: dict[str, np.ndarray] = field(default_factory=dict)


def block_groups(sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Consecutive label blocks `{"dnase": 4, "tf": 5}` → `{"dnase": [0..3], "tf": [4..8]}`."""
    bounds = np.cumsum([0, *sizes.values()])
    return {name: np.arange(lo, hi) for name, lo, hi in zip(sizes, bounds[:-1], bounds[1:], strict=True)}


def read_names(path: Path, expected: int) -> tuple[str, ...]:
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(names) != expected:
        raise ValueError(f"{path}: expected {expected} label names, found {len(names)}")
    return names


def deepsea_label_names() -> tuple[str, ...]:
    return read_names(require_data(DEEPSEA_NAMES, "chromatin.deepsea label names"), 919)


def deepsea_groups() -> dict[str, np.ndarray]:
    return {name: np.arange(lo, hi) for name, (lo, hi) in DEEPSEA_GROUPS.items()}


def metric_fn(groups: dict[str, np.ndarray]) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    def metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
        return multilabel_metrics(y_true, y_score, groups)[0]

    return metrics


def _task(name: str, length: int, names: tuple[str, ...], groups: dict[str, np.ndarray], protocol: str,
          load: Callable[[], Mapping[str, Dataset]], synthetic_: bool, description: str) -> ChromatinTask:  # fmt: skip
    return ChromatinTask(
        name=name,
        io=IOSpec("seq", (length,), len(names), "multilabel", names),
        primary_metric=PRIMARY,
        split_protocol=protocol,
        synthetic=synthetic_,
        load=load,
        metric_fn=metric_fn(groups),
        description=description,
        label_groups=groups,
    )


# --- DeepSEA ---------------------------------------------------------------------------------------------------------


def deepsea_folder(option: str) -> Path:
    """`data.dir`, else `$REGBENCH_DATA/deepsea`; a DataNotFoundError says what to fetch when files are missing."""
    root = data_root()
    folder = Path(option).expanduser() if option else (root / "deepsea" if root else None)
    files = [f for f, _, _ in DEEPSEA_SPLITS.values()]
    if folder is None or not all((folder / f).is_file() for f in files):
        where = f"{folder}" if folder else "data.dir (REGBENCH_DATA is not set)"
        raise DataNotFoundError(
            f"chromatin.deepsea: {', '.join(files)} not found in {where}. Download {DEEPSEA_URL}, unpack it and "
            "pass --set data.dir=PATH/deepsea_train (or put the three files in $REGBENCH_DATA/deepsea)."
        )
    return folder


def load_deepsea(folder: Path) -> dict[str, Dataset]:
    """The bundle's three splits through the cache (each file MATLAB v7.3 or v5, see `deepsea_blocks`)."""
    out: dict[str, MemmapSeqDataset] = {}
    for split, (filename, x_key, y_key) in DEEPSEA_SPLITS.items():
        path = folder / filename
        out[split] = cached_split(path, x_key, y_key, lambda p=path, s=split: deepsea_blocks(p, s),
                                  DEEPSEA_ID_PREFIX[split])  # fmt: skip
    train = out["train"]
    for split in ("val", "test"):
        ds = out[split]
        if (ds.length, ds.labels.shape[1]) != (train.length, train.labels.shape[1]):
            raise ValueError(f"{folder / DEEPSEA_SPLITS[split][0]}: {ds.length} bp × {ds.labels.shape[1]} labels, "
                             f"train.mat has {train.length} × {train.labels.shape[1]}")  # fmt: skip
    return dict(out)


@TASKS.decorator("chromatin.deepsea", "DeepSEA bundle: 919 chromatin profiles (DNase/TF/histone), 1000 bp")
def deepsea_task(**options: Any) -> ChromatinTask:
    opts = merge("data", Settings({"dir": Setting("", accepts="a folder")}), options)
    folder = deepsea_folder(opts["dir"])
    names = deepsea_label_names()
    return _task("chromatin.deepsea", 1000, names, deepsea_groups(), "official", lambda: load_deepsea(folder),
                 False, f"DeepSEA training bundle v0.9 ({folder})")  # fmt: skip


# --- Basset ----------------------------------------------------------------------------------------------------------


def basset_path(option: str) -> Path:
    root = data_root()
    path = Path(option).expanduser() if option else (root / "basset" / "encode_roadmap.h5" if root else None)
    if path is None or not path.is_file():
        raise DataNotFoundError(
            f"chromatin.basset: Basset HDF5 {path or '(REGBENCH_DATA is not set)'} not found. Build "
            "encode_roadmap.h5 with Basset's data scripts (github.com/davek44/Basset, data/get_dnase.sh then "
            "seq_hdf5.py) and pass --set data.path=PATH/encode_roadmap.h5."
        )
    return path


def basset_info(path: Path, fallback_names: Callable[[], tuple[str, ...]]) -> tuple[int, tuple[str, ...]]:
    """Length and label names of a Basset file (names from its `target_labels`, else `fallback_names()`)."""
    with h5py.File(path, "r") as f:
        length, names = check_basset(path, f)
        n_labels = f["train_out"].shape[1]
    resolved = tuple(names) or fallback_names()
    if len(resolved) != n_labels:
        raise ValueError(f"{path}: {n_labels} labels but {len(resolved)} label names")
    return length, resolved


def load_basset(path: Path) -> dict[str, Dataset]:
    """The file's three splits through the cache (ids `{x_key}:{row}`)."""
    return {split: cached_split(path, x_key, y_key, lambda x=x_key, y=y_key: HDF5Blocks(path, x, y, BASSET), x_key)
            for split, (x_key, y_key) in BASSET_SPLITS.items()}  # fmt: skip


@TASKS.decorator("chromatin.basset", "Basset HDF5: 164 DNase-seq cell types, 600 bp")
def basset_task(**options: Any) -> ChromatinTask:
    opts = merge("data", Settings({"path": Setting("", accepts="an HDF5 file")}), options)
    path = basset_path(opts["path"])
    length, names = basset_info(path, lambda: read_names(require_data(BASSET_NAMES, "chromatin.basset"), 164))
    groups = {"dnase": np.arange(len(names))}
    return _task("chromatin.basset", length, names, groups, "official", lambda: load_basset(path), False,
                 f"Basset ENCODE/Roadmap DNase ({path})")  # fmt: skip


# --- synthetic -------------------------------------------------------------------------------------------------------


def synthetic_files(fmt: str, n: int, length: int, seed: int) -> Path:
    """The cached synthetic files for these options, generated (atomically, one process at a time) on first use."""
    name = f"{fmt}_n{n}_L{length}_s{seed}"
    target = cache_dir() / "synthetic_chromatin" / (name if fmt == "deepsea" else f"{name}.h5")
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target.with_name(name + ".lock")):  # benchmark cells of the same task start side by side
        if not target.exists():
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
            try:
                written = synthetic.write_synthetic(tmp / target.name, fmt, n, length, seed)
                os.replace(written, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


@TASKS.decorator("chromatin.synthetic", "planted-motif chromatin profiles (4 DNase, 5 TF, 3 histone) in real formats")
def synthetic_task(**options: Any) -> ChromatinTask:
    shortest = 4 * max(len(m) for m in synthetic.MOTIFS.values())  # room for the planted motifs
    table = Settings(
        {
            "n": Setting(3000, ge=100),
            "length": Setting(200, ge=shortest, le=100_000),
            "format": Setting("deepsea", choices=("deepsea", "basset")),
            "seed": Setting(0, ge=0),
        }
    )
    opts = merge("data", table, options)
    names = tuple(synthetic.LABELS)
    groups = block_groups(synthetic.GROUP_SIZES)

    def load() -> dict[str, Dataset]:
        path = synthetic_files(opts["format"], opts["n"], opts["length"], opts["seed"])
        return load_deepsea(path) if opts["format"] == "deepsea" else load_basset(path)

    protocol = f"synthetic_blocks_train0.8_val0.1_test0.1_seed{opts['seed']}"
    return _task("chromatin.synthetic", opts["length"], names, groups, protocol, load, True,
                 f"synthetic chromatin profiles, {opts['format']} format")  # fmt: skip
