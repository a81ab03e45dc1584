"""`regbench plugin check NAME` on plugins written as files outside the repository: broken ones fail on the check
at fault with a one-line detail and exit 1; an unknown name is one line, exit 2. (The built-ins pass the same
checks in tests/test_models.py, test_task_contract.py and test_plugin_defaults.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_cli import regbench

from harness.cli import main
from harness.contract import CheckResult, ContractError, run, table

WRONG_SHAPE = """
import torch
from torch import nn
from harness.api import Encoder, ModelPlugin, Setting, Settings, register_model


class Wrong(nn.Module, Encoder):
    def __init__(self):
        super().__init__()
        self.out_dim = 8
        self.embed = nn.Embedding(5, 4)

    def forward(self, codes, mask):
        return self.embed(codes.long()).mean(dim=1)  # (B, 4), not (B, out_dim)


def build(io, *, width):
    return Wrong()


register_model(ModelPlugin("wrong_shape", "forward returns (B, 4)", "seq", Settings({"width": Setting(8, ge=1)}),
                           lambda trial: {}, build=build, paper="none"))
"""

NO_DEFAULT = WRONG_SHAPE.replace("def build(io, *, width):", "def build(io, *, width, depth):").replace(
    "wrong_shape", "no_default"
)

LEAKY_TASK = """
import numpy as np
from harness.api import IOSpec, SeqDataset, Seqs, SplitTask, binary_metrics, register_task

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def load():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=50)) for _ in range(40)]
    seqs[30] = seqs[0].translate(COMPLEMENT)[::-1]  # test row 30 is train row 0 on the other strand
    labels = (np.arange(40) % 2).astype(np.float32)
    ids = np.array([f"r{i}" for i in range(40)])
    parts = {"train": slice(0, 20), "val": slice(20, 30), "test": slice(30, 40)}
    return {k: SeqDataset((Seqs.from_strings(seqs[s]),), labels[s], ids[s]) for k, s in parts.items()}


register_task("leaky.task", lambda **o: SplitTask("leaky.task", IOSpec("seq", (50,), 1, "binary"), "auroc",
              "random", True, load, binary_metrics), "test repeats a training sequence")
"""


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The table printed by `plugin check` (header, rows, summary line): check → (result, detail); {} if none."""
    if not stdout.strip():
        return {}
    header, *lines, _summary = stdout.splitlines()
    result, detail = header.index("result"), header.index("detail")
    return {line[:result].strip(): (line[result:detail].strip(), line[detail:]) for line in lines}


def check_file(tmp_path: Path, name: str, source: str) -> tuple[int, dict[str, tuple[str, str]], str, str]:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    out = regbench(["plugin", "check", name], plugin_files=[path])
    return out.returncode, rows(out.stdout), out.stdout, out.stderr


@pytest.mark.slow
def test_forward_returning_the_wrong_shape_fails_the_forward_check(tmp_path: Path) -> None:
    code, table_rows, stdout, stderr = check_file(tmp_path, "wrong_shape", WRONG_SHAPE)
    assert code == 1, stdout + stderr
    assert "Traceback" not in stderr
    assert table_rows["signature"][0] == "pass" and table_rows["settings"][0] == "pass"
    assert table_rows["forward[seq200]"] == (
        "FAIL",
        "wrong_shape: forward returned shape (3, 4), expected (B, out_dim) = (3, 8)",
    )
    assert table_rows["train[enhancers.synthetic]"][0] == "FAIL"
    summary = stdout.splitlines()[-1]
    assert summary.startswith("model wrong_shape: 2 passed, 13 failed, 3 skipped — FAILED: "), summary
    assert "forward[seq200]" in summary.split("FAILED: ")[1].split(", ")


@pytest.mark.slow
def test_a_setting_without_a_default_is_refused_in_one_line(tmp_path: Path) -> None:
    """The signature rules are checked when the plugin registers (`harness.plugin_validation`, the same rules as
    the `signature` check), so such a plugin never reaches the table: one line naming the file and the cause."""
    code, table_rows, stdout, stderr = check_file(tmp_path, "no_default", NO_DEFAULT)
    assert code == 2 and table_rows == {}, stdout + stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "no_default.py" in stderr
    assert "no_default.build: keyword-only parameter(s) ['depth'] have no declared default in `defaults`" in stderr


def test_a_task_whose_test_split_repeats_a_training_sequence_fails_disjoint(tmp_path: Path) -> None:
    code, table_rows, stdout, stderr = check_file(
        tmp_path, "leaky_task", LEAKY_TASK.replace("leaky.task", "leaky_task")
    )
    assert code == 1, stdout + stderr
    assert table_rows["disjoint"] == ("FAIL", "train ∩ test: 1 shared, e.g. r0 == r30")
    others = {check: result for check, (result, _) in table_rows.items() if check != "disjoint"}
    assert set(others.values()) == {"pass"}, others


def test_an_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", "kmer_atention"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == (
        "regbench plugin: error: 'kmer_atention' is neither a registered model nor a task. "
        "Did you mean kmer_attention, kmer_logreg? See `regbench models` and `regbench tasks`"
    )


def test_run_reports_every_check_and_goes_on_after_a_failure() -> None:
    def broken() -> str:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (3x4 and 8x1)\nsecond line")

    def unmet() -> str:
        raise ContractError("logits (3, 2), expected (3, 1)")

    results = run([("a", lambda: "fine"), ("b", broken), ("c", unmet), ("d", lambda: "after")])
    assert results == [
        CheckResult("a", "pass", "fine"),
        CheckResult("b", "FAIL", "RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x4 and 8x1)"),
        CheckResult("c", "FAIL", "logits (3, 2), expected (3, 1)"),
        CheckResult("d", "pass", "after"),
    ]
    assert (
        table(results).splitlines()[2]
        == "b      FAIL    RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x4 and 8x1)"
    )
