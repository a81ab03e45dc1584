"""`regbench transfer` and `harness.benchmark.cell_line_transfer` on synthetic EPI cell lines (epi.synthetic, seeds)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from harness.benchmark.cell_line_transfer import METRICS, SHARED, CellLine, heatmap, parse_cells, safe_key
from harness.cli import main
from harness.config import ConfigError
from harness.tracking import store

SMALL = ["data.enhancer_window=120", "data.promoter_window=80", "train.device=cpu", "train.progress=false",
         "train.threads=1", "train.batch_size=128", "model.n_kernels=8", "model.kernel_size=9", "model.hidden=8",
         "model.lstm_layers=1", "model.dense=16"]  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """`train.threads=1` (tiny tensors train faster on one thread) must not leak into other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_parse_cells() -> None:
    cells = parse_cells("gm12878, synthetic@seed=2@split=random,k562")
    assert cells == [
        CellLine("gm12878", "epi.gm12878"),
        CellLine("synthetic@seed=2@split=random", "epi.synthetic", {"seed": 2, "split": "random"}),
        CellLine("k562", "epi.k562"),
    ]
    with pytest.raises(ConfigError, match="CELL@KEY=VALUE"):
        parse_cells("synthetic@seed")
    with pytest.raises(ConfigError, match="twice"):
        parse_cells("k562,k562")
    with pytest.raises(ConfigError, match="no cells"):
        parse_cells(" , ")


def test_heatmap_and_safe_key() -> None:
    frame = pd.DataFrame([[0.5, 0.25]], index=["a"], columns=["a", "b@seed=1"])
    fig = heatmap(frame, "t")
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.500", "0.250"]
    assert safe_key("transfer", "auprc", "synthetic@seed=1") == "transfer/auprc/synthetic_seed_1"


def test_transfer_command_logs_matrix(tmp_path: Path) -> None:
    """Train on two synthetic cells, test on three; the split=random cell shares pairs with the seed-0 train split."""
    tests = ["synthetic", "synthetic@seed=1", "synthetic@split=random"]
    argv = ["transfer", "--model", "speid", "--train-cell", "synthetic,synthetic@seed=1", "--test-cells",
            ",".join(tests), "--max-epochs", "1", "--experiment", "transfer-test"]  # fmt: skip
    for item in SMALL:
        argv += ["--set", item]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    lines = out.getvalue().strip().splitlines()
    assert lines[-1].startswith("run_id: ")
    run_id = lines[-1].removeprefix("run_id: ")

    client = store.client()
    run = client.get_run(run_id)
    assert run.data.tags["regbench.kind"] == "transfer" and run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run_id, "transfer")}
    expected = {f"transfer/{m}.{ext}" for m in METRICS for ext in ("csv", "png")} | {f"transfer/{SHARED}.csv"}
    assert expected <= artifacts

    for name in (*METRICS, SHARED):
        frame = pd.read_csv(client.download_artifacts(run_id, f"transfer/{name}.csv", str(tmp_path)), index_col=0)
        assert frame.shape == (2, 3) and list(frame.columns) == tests
        assert list(frame.index) == ["synthetic", "synthetic@seed=1"]
        values = frame.to_numpy()
        assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
        assert all(f"test {name}" in line for line in lines if line.startswith(f"test {name} "))
        key = safe_key("transfer", name, "synthetic@seed=1", "synthetic")
        assert run.data.metrics[key] == pytest.approx(frame.loc["synthetic@seed=1", "synthetic"])
    shared = pd.read_csv(client.download_artifacts(run_id, f"transfer/{SHARED}.csv", str(tmp_path)), index_col=0)
    assert shared.loc["synthetic", "synthetic"] == 0.0  # a task's own test split never repeats its train pairs
    assert shared.loc["synthetic@seed=1", "synthetic"] == 0.0  # another genome
    assert shared.loc["synthetic", "synthetic@split=random"] > 0.5  # same pairs, split differently
