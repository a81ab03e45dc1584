"""targetfinder_gbm and the epi.targetfinder_nhek feature task: real NHEK features, errors on sequence tasks."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from harness.data.datasets import FeatureDataset, SeqDataset, Seqs
from harness.plugins import get_model, make_task
from harness.spec import IOSpec
from tasks.targetfinder_features import read_feature_table


def test_tiny_gbm_on_real_nhek_features_random_vs_chromosome(real_data: Path) -> None:
    """Under the (leaky) random split the tiny GBM ranks far above the positive rate; across chromosomes it does not."""
    plugin = get_model("targetfinder_gbm")
    assert plugin.fit_sklearn is not None
    auprc = {}
    for split in ("random", "chromosome"):
        task = make_task("epi.targetfinder_nhek", {"split": split})
        splits = task.splits()
        assert task.split_protocol == split and splits["train"].features.shape[1] == 40
        model = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **{**plugin.defaults, **plugin.tiny})
        test = splits["test"]
        scores = model.score(test)
        assert scores.shape == (len(test),) and set(task.metrics(test.labels, scores)) >= {"auprc", "f1"}
        auprc[split] = average_precision_score(test.labels, scores) / test.labels.mean()  # lift over the base rate
    assert auprc["random"] > 3.0 and auprc["chromosome"] < auprc["random"] / 2


def test_feature_table_columns_and_leakage_audit(real_data: Path) -> None:
    table = read_feature_table(real_data / "targetfinder/NHEK_training.csv.gz")
    assert len(table.labels) == 26891 and int(table.labels.sum()) == 1291
    assert all(c.endswith((" (enhancer)", " (promoter)")) for c in table.columns)
    assert "H3K27ac (enhancer)" in table.columns and "CAGE (promoter)" in table.columns
    lines = make_task("epi.targetfinder_nhek").audit_lines()
    chrom = [line for line in lines if "train → test (all" in line]
    assert len(chrom) == 2 and "either 0 (0.0%)" in chrom[0] and "either 0 (0.0%)" not in chrom[1]


def test_gbm_rejects_sequence_tasks() -> None:
    seqs = Seqs.from_strings(["ACGT", "TTGA"])
    dataset = SeqDataset((seqs, seqs), np.array([0.0, 1.0], dtype=np.float32), np.array(["a", "b"]))
    plugin = get_model("targetfinder_gbm")
    assert plugin.fit_sklearn is not None
    hp = {**plugin.defaults, "n_estimators": 2}
    with pytest.raises(ValueError, match=r"needs a feature table .* got a SeqDataset of sequences"):
        plugin.fit_sklearn(dataset, dataset, IOSpec("seq_pair", (4, 4), 1, "binary"), **hp)


def test_gbm_bad_settings(rng: np.random.Generator) -> None:
    data = FeatureDataset(rng.random((20, 4), dtype=np.float32), np.arange(20) % 2 * 1.0, np.arange(20).astype(str))
    plugin = get_model("targetfinder_gbm")
    assert plugin.fit_sklearn is not None
    fit = partial(plugin.fit_sklearn, **plugin.defaults)  # the given settings win
    model = fit(data, data, IOSpec("seq", (0,), 1, "binary"), backend="hist", n_estimators=5, max_features="sqrt")
    assert model.score(data).shape == (20,)
    with pytest.raises(ValueError, match="backend='xgb' must be one of exact, hist"):
        fit(data, data, IOSpec("seq", (0,), 1, "binary"), backend="xgb")
    with pytest.raises(ValueError, match="max_features='half' must be one of log2, sqrt, all"):
        fit(data, data, IOSpec("seq", (0,), 1, "binary"), max_features="half")
