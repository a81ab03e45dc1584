"""`regbench transfer --task chromatin.X --assay A` (harness.benchmark.chromatin_transfer): label names → cell types
and assays, clear one-line errors, and on `chromatin.synthetic` a matrix with the structure its motifs plant.

Synthetic DNase labels (tasks/_synthetic_chromatin.py): K562 = GATA | AP-1 | CTCF, GM12878 = ETS | CTCF,
HeLa-S3 = AP-1 | NF-Y, HepG2 = NF-Y | E-box. K562 shares CTCF with GM12878 and AP-1 with HeLa-S3; HepG2 shares NF-Y
with HeLa-S3 and nothing with K562 or GM12878, so a model trained on K562 or HepG2 must transfer to the cell types
sharing a motif and score ~0.5 on those sharing none.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from harness.benchmark.chromatin_transfer import Profile, assay_columns, parse_cell_list, profiles
from harness.cli import main
from harness.config import ConfigError
from harness.tracking import store

DEEPSEA_LIKE = ["HSMM_emb_DNase_None", "K562_DNase_None", "A549_CTCF_EtOH_0.02pct", "HSMM_emb_CTCF_None",
                "K562_CTCF_IFNa6h", "K562_CTCF_None", "SK-N-SH_RA_DNase_None", "SK-N-SH_RA_p300_None"]  # fmt: skip


def test_deepsea_and_basset_names_give_cell_types_and_assays() -> None:
    found = profiles("chromatin.deepsea", DEEPSEA_LIKE)
    assert found[0] == Profile("HSMM_emb", "DNase", "None")
    assert found[2] == Profile("A549", "CTCF", "EtOH_0.02pct")
    assert found[3] == Profile("HSMM_emb", "CTCF", "None")  # the DNase cell types resolve `_` inside a cell name
    assert found[7] == Profile("SK-N-SH_RA", "p300", "None")
    assert assay_columns("t", found, "CTCF", ["K562", "HSMM_emb", "A549"]) == {"K562": 5, "HSMM_emb": 3, "A549": 2}
    basset = profiles("chromatin.basset", ["8988T", "HeLa-S3_IFNa4h"])
    assert basset == [Profile("8988T", "DNase"), Profile("HeLa-S3_IFNa4h", "DNase")]
    with pytest.raises(ConfigError, match="label 'K562' is not CELL_ASSAY"):
        profiles("chromatin.other", ["K562"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_cell_list("K562,K562", "--train-cells")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-cells", "K562", "--test-cells", "HepG3"],
         "unknown cell type 'HepG3' (did you mean HepG2?); known: GM12878, HeLa-S3, HepG2, K562"),
        (["--assay", "CTCF", "--train-cells", "GM12878", "--test-cells", "HepG2"],
         "cell type HepG2 has no CTCF label; its assays: DNase, H3K4me3, USF-1"),
        (["--train-cells", "K562,", "--test-cells", ","], "--test-cells: no cell types in ','"),
    ],
)  # fmt: skip
def test_bad_cells_and_assays_fail_in_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    argv = ["transfer", "--task", "chromatin.synthetic", "--model", "kmer_logreg", *args]
    if "--assay" not in args:
        argv += ["--assay", "DNase"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_matrix_has_the_planted_structure(tmp_path: Path) -> None:
    tests = ["K562", "GM12878", "HeLa-S3", "HepG2"]
    argv = ["transfer", "--task", "chromatin.synthetic", "--assay", "DNase", "--model", "kmer_logreg",
            "--train-cells", "K562,HepG2", "--test-cells", ",".join(tests), "--set", "data.n=6000",
            "--set", "data.length=200", "--experiment", "chromatin-transfer"]  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    run_id = out.getvalue().strip().splitlines()[-1].removeprefix("run_id: ")
    client = store.client()
    run = client.get_run(run_id)
    assert run.data.tags["regbench.kind"] == "transfer" and run.data.tags["assay"] == "DNase"
    frames = {name: pd.read_csv(client.download_artifacts(run_id, f"transfer/{name}.csv", str(tmp_path)), index_col=0)
              for name in ("auroc", "auroc_low", "auroc_high", "auprc")}  # fmt: skip
    auroc, low, high = frames["auroc"], frames["auroc_low"], frames["auroc_high"]
    assert list(auroc.index) == ["K562", "HepG2"] and list(auroc.columns) == tests
    assert ((low <= auroc) & (auroc <= high)).all().all()
    for a, b in [("K562", "K562"), ("HepG2", "HepG2"), ("K562", "GM12878"), ("K562", "HeLa-S3"), ("HepG2", "HeLa-S3")]:
        assert low.loc[a, b] > 0.5, f"{a} → {b} shares a motif: {auroc.loc[a, b]:.3f} [{low.loc[a, b]:.3f}, ...]"
    for a, b in [("K562", "HepG2"), ("HepG2", "K562"), ("HepG2", "GM12878")]:
        assert low.loc[a, b] < 0.5 < high.loc[a, b], f"{a} → {b} shares no motif: {auroc.loc[a, b]:.3f}"
    assert auroc.loc["HepG2", "HepG2"] > auroc.loc["HepG2", "HeLa-S3"] > auroc.loc["HepG2", "K562"]
    assert run.data.metrics["transfer/auroc/HepG2/HeLa-S3"] == pytest.approx(auroc.loc["HepG2", "HeLa-S3"])
    artifacts = {a.path for a in client.list_artifacts(run_id, "transfer")}
    assert {"transfer/auroc.png", "transfer/auprc.png", "transfer/auprc_low.csv"} <= artifacts
