"""A fuzz corpus of malformed inputs, generated here, through the real CLI entry points (`harness.cli.main`).

Every bad input must exit non-zero, print no traceback, and name what is wrong (the file and line, the record, the
key and value). Inputs that differ from a clean file only in form (CRLF, lower case, wrapped FASTA, a byte-order
mark, a path with spaces) must be accepted and score exactly as the clean file does. One tiny `kmer_attention` is
trained per module on a variable-length `enhancers.files` task (so its maximum input length is `model.max_len`).
Count the corpus with `pytest tests/test_bad_inputs.py -v | grep -c 'bad-.*PASSED'` (and `ok-` for the accepted).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

MAX_LEN = 300
TRAIN = ["--task", "enhancers.synthetic", "--model", "kmer_attention", "--set", "train.progress=false"]


@dataclass(frozen=True)
class Outcome:
    code: int
    text: str  # stdout and stderr together


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """`regbench ARGV` in this process: its exit code (argparse's SystemExit included) and what it printed."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    out = capsys.readouterr()
    return Outcome(code, out.out + out.err)


def assert_clean_error(outcome: Outcome, *names: str) -> None:
    assert outcome.code != 0, outcome.text
    assert "Traceback" not in outcome.text, outcome.text
    for name in names:
        assert name in outcome.text, f"{name!r} not named in: {outcome.text}"


def random_seq(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=length))


# --- settings through --set: refused before any data loads --------------------------------------------------------

SET_CASES = [
    ("train.lr=inf", "train.lr=inf"), ("train.lr=nan", "train.lr=nan"), ("train.lr=-1", "train.lr=-1"),
    ("train.lr=0", "train.lr=0"), ("train.lr=abc", "train.lr='abc'"), ("train.max_epochs=-1", "train.max_epochs=-1"),
    ("train.max_epochs=0", "train.max_epochs=0"), ("train.max_epochs=1.5", "train.max_epochs=1.5"),
    ("train.batch_size=0", "train.batch_size=0"), ("train.eval_batch_size=-3", "train.eval_batch_size=-3"),
    ("train.weight_decay=-0.1", "train.weight_decay=-0.1"), ("train.warmup_frac=1.5", "train.warmup_frac=1.5"),
    ("train.warmup_frac=nan", "train.warmup_frac=nan"), ("train.schedule=step", "train.schedule='step'"),
    ("train.grad_clip=-1", "train.grad_clip=-1"), ("train.patience=-1", "train.patience=-1"),
    ("train.class_weight=heavy", "train.class_weight='heavy'"), ("train.device=tpu", "train.device='tpu'"),
    ("train.device=cuda:x", "train.device='cuda:x'"), ("train.threads=-2", "train.threads=-2"),
    ("train.amp=maybe", "train.amp='maybe'"), ("train.bogus=1", "train.bogus"),
    ("model.k=0", "model.k=0"), ("model.k=100", "model.k=100"), ("model.k=inf", "model.k=inf"),
    ("model.k=abc", "model.k='abc'"), ("model.d_model=0", "model.d_model=0"), ("model.n_heads=3", "model.n_heads=3"),
    ("model.n_heads=0", "model.n_heads=0"), ("model.dropout=nan", "model.dropout=nan"),
    ("model.dropout=1.5", "model.dropout=1.5"), ("model.dropout=-0.1", "model.dropout=-0.1"),
    ("model.pooling=sum", "model.pooling='sum'"), ("model.pos_encoding=rope", "model.pos_encoding='rope'"),
    ("model.max_len=0", "model.max_len=0"), ("model.n_layers=0", "model.n_layers=0"),
    ("model.d_model=63", "model.d_model=63"), ("model.head_dim=-4", "model.head_dim=-4"),
    ("data.n=abc", "data.n='abc'"), ("data.n=-5", "data.n=-5"), ("data.n=10", "data.n=10"),
    ("data.length=50", "data.length=50"), ("data.val_fraction=0", "data.val_fraction=0"),
    ("data.val_fraction=1", "data.val_fraction=1"), ("data.test_fraction=nan", "data.test_fraction=nan"),
    ("data.seed=-1", "data.seed=-1"), ("data.bogus=1", "data.bogus"), ("foo.bar=1", "foo"), ("k=4", "k=4"),
]  # fmt: skip
OTHER_SET_CASES = [  # (task, model, --set items, names the message must contain)
    ("enhancers.synthetic", "kmer_attention", ["model.k=8", "model.max_len=4"], "model.k=8"),
    ("enhancers.synthetic", "kmer_logreg", ["model.C=0"], "model.C=0"),
    ("enhancers.synthetic", "kmer_logreg", ["model.class_weight=heavy"], "model.class_weight='heavy'"),
    ("enhancers.synthetic", "kmer_logreg", ["model.k=9"], "model.k=9"),
    ("enhancers.synthetic", "basset", ["model.dropout=1"], "model.dropout=1"),
    ("enhancers.synthetic", "basset", ["model.width1=0"], "model.width1=0"),
    ("enhancers.synthetic", "gc_length", ["model.C=-1"], "model.C=-1"),
    ("epi.synthetic", "eplae", ["model.kernel_size=4"], "model.kernel_size=4"),
    ("epi.synthetic", "speid", ["model.lstm_layers=0"], "model.lstm_layers=0"),
    ("epi.synthetic", "epsat", ["model.attn_dropout=nan"], "model.attn_dropout=nan"),
    ("epi.synthetic", "kmer_logreg", ["data.split=foo"], "data.split='foo'"),
    ("epi.synthetic", "kmer_logreg", ["data.augment=shift"], "data.augment='shift'"),
    ("epi.synthetic", "kmer_logreg", ["data.val_fraction=0.6", "data.test_fraction=0.5"], "data.val_fraction=0.6"),
    ("epi.synthetic", "kmer_logreg", ["data.enhancer_window=5"], "data.enhancer_window=5"),
    ("chromatin.synthetic", "basset", ["data.format=bed"], "data.format='bed'"),
    ("chromatin.synthetic", "basset", ["data.length=10"], "data.length=10"),
    ("epi.targetfinder_nhek", "targetfinder_gbm", ["model.learning_rate=0"], "model.learning_rate=0"),
    ("epi.targetfinder_nhek", "targetfinder_gbm", ["model.backend=gpu"], "model.backend='gpu'"),
]


@pytest.mark.parametrize(("item", "named"), SET_CASES, ids=[f"bad-set-{c[0]}" for c in SET_CASES])
def test_bad_setting_is_refused(item: str, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean_error(run(["train", *TRAIN, "--set", item], capsys), named)


@pytest.mark.parametrize(("task", "model", "items", "named"), OTHER_SET_CASES,
                         ids=[f"bad-set-{c[1]}-{'+'.join(c[2])}" for c in OTHER_SET_CASES])  # fmt: skip
def test_bad_setting_of_other_plugins_is_refused(
    task: str, model: str, items: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = [a for item in items for a in ("--set", item)]
    assert_clean_error(run(["train", "--task", task, "--model", model, *sets], capsys), named)


# --- study files and study settings: refused before Ray starts -----------------------------------------------------


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if Ray is started while it runs."""
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before validation failed")

    monkeypatch.setattr(ray, "init", refuse)


STUDY_HEAD = "tasks: [enhancers.synthetic]\nmodels: [kmer_attention]\ntrials: 1\nshortcuts: false\n"
STUDY_CASES = [  # (id, file text, line blamed or 0 for no line, names)
    ("nan-dropout", STUDY_HEAD + "model_set:\n  kmer_attention:\n    model.dropout: .nan\n", 7, ["model.dropout=nan"]),
    ("inf-lr", STUDY_HEAD + "set:\n  train.lr: .inf\n", 6, ["train.lr=inf"]),
    ("n-abc", STUDY_HEAD + "set:\n  data.n: abc\n", 6, ["data.n='abc'"]),
    ("k-zero", STUDY_HEAD + "set:\n  model.k: 0\n", 6, ["model.k=0"]),
    ("device-tpu", STUDY_HEAD + "set:\n  train.device: tpu\n", 6, ["train.device='tpu'"]),
    ("heads", STUDY_HEAD + "set:\n  model.n_heads: 3\n", 6, ["model.n_heads=3"]),
    ("epochs-neg", STUDY_HEAD + "max_epochs: -1\n", 5, ["max_epochs='-1'"]),
    ("trials-zero", "tasks: [enhancers.synthetic]\nmodels: [kmer_attention]\ntrials: 0\n", 3, ["trials='0'"]),
    ("unknown-key", STUDY_HEAD + "epochs: 3\n", 5, ["'epochs'"]),
    ("unknown-task", "tasks: [enhancers.nope]\nmodels: [kmer_attention]\n", 1, ["enhancers.nope"]),
    ("not-yaml", "tasks: [enhancers.synthetic\nmodels: [kmer_attention]\n", 0, ["not valid YAML"]),
    ("empty", "", 1, ["empty study file"]),
    ("list-value", STUDY_HEAD + "set:\n  train.lr: [1, 2]\n", 6, ["train.lr"]),
]


@pytest.mark.parametrize(("text", "line", "names"), [c[1:] for c in STUDY_CASES],
                         ids=[f"bad-study-{c[0]}" for c in STUDY_CASES])  # fmt: skip
def test_bad_study_file_names_file_and_line(
    text: str, line: int, names: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None
) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert_clean_error(
        run(["benchmark", "--study", str(path)], capsys), f"{path}:{line}" if line else str(path), *names
    )


@pytest.mark.parametrize("kind", ["missing", "folder"], ids=lambda k: f"bad-study-path-{k}")
def test_bad_study_path_is_named(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None) -> None:
    path = tmp_path / "nowhere.yaml" if kind == "missing" else tmp_path
    assert_clean_error(run(["benchmark", "--study", str(path)], capsys), str(path))


STUDY_SET_CASES = [("model.dropout=nan", "model.dropout=nan"), ("train.lr=inf", "train.lr=inf"),
                   ("data.n=-5", "data.n=-5"), ("model.k=100", "model.k=100")]  # fmt: skip


@pytest.mark.parametrize(("item", "named"), STUDY_SET_CASES, ids=[f"bad-study-set-{c[0]}" for c in STUDY_SET_CASES])
def test_bad_study_setting_is_refused_before_ray(
    item: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None
) -> None:
    argv = ["study", "--task", "enhancers.synthetic", "--model", "kmer_attention", "--trials", "1", "--set", item,
            "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]  # fmt: skip
    assert_clean_error(run(argv, capsys), named)


# --- files: predict / evaluate with a trained model, train --task enhancers.files ------------------------------------


@dataclass(frozen=True)
class Trained:
    run_id: str
    uri: str
    folder: Path


def labelled_rows(rng: np.random.Generator, n: int) -> list[tuple[str, int]]:
    """Variable-length sequences (150–250 bp); positives carry a GATA-rich block, so both classes are learnable."""
    rows = []
    for i in range(n):
        seq = random_seq(rng, int(rng.integers(150, 251)))
        if i % 2:
            seq = seq[:40] + "AGATAAGATAAGATAA" + seq[56:]
        rows.append((seq, i % 2))
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A tiny kmer_attention trained once on `enhancers.files` (variable length, `model.max_len=MAX_LEN`)."""
    folder = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    train_tsv = folder / "train.tsv"
    train_tsv.write_text("".join(f"{s}\t{y}\n" for s, y in labelled_rows(np.random.default_rng(0), 160)))
    argv = ["train", "--task", "enhancers.files", "--model", "kmer_attention", "--max-epochs", "1",
            "--set", f"data.train={train_tsv}", "--set", f"model.max_len={MAX_LEN}", "--set", "model.d_model=16",
            "--set", "model.head_dim=16", "--set", "model.k=3", "--set", "train.progress=false"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("REGBENCH_CACHE", str(folder / "cache"))
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(argv) == 0
    run_id = out.getvalue().strip().splitlines()[-1].removeprefix("run_id: ")
    return Trained(run_id, uri, folder)


@pytest.fixture
def model_run(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.uri)
    return trained.run_id


def _unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000; as root (who reads any file) the permission check is made to see what a user would."""
    path.chmod(0)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != path and real(p, mode, **kw))


LONG = 100_000
SEQ = "ACGTTGCAAC" * 20  # 200 bp
CLEAN_FA, BAD_FA = f">b\n{SEQ}\n", ">a\nACGTZ\n"
FILE_CASES: dict[str, tuple[str, Callable[[Path], str], list[str]]] = {
    # id: (command, writer of the input file returning its content, names besides the file name)
    "fasta-invalid-char": ("predict", lambda p: f">r1\n{SEQ}\n>r2\nACGUACGT\n", [":4:", "'r2'", "'U'"]),
    "fasta-no-sequence": ("predict", lambda p: f">r1\n{SEQ}\n>r2\n", [":3:", "'r2'"]),
    "fasta-no-id": ("predict", lambda p: f">\n{SEQ}\n", [":1:", "no record id"]),
    "fasta-headless": ("predict", lambda p: f"{SEQ}\n>r1\n{SEQ}\n", ["invalid character '>'"]),
    "fasta-binary": ("predict", lambda p: ">r1\n\x00\x01\x02\xff\n", [":2:", "invalid character"]),
    "fasta-100kb": ("predict", lambda p: f">ok\n{SEQ}\n>huge\n{'ACGT' * (LONG // 4)}\n",
                    ["record huge", f"length {LONG}", f"({MAX_LEN} bases)"]),
    "tsv-invalid-char": ("predict", lambda p: f"seq\n{SEQ}\nACGTXX\n", [":3:", "'X'"]),
    "tsv-only-header": ("predict", lambda p: "sequence\n", ["no sequences"]),
    "blank-lines": ("predict", lambda p: "\n\n  \n", ["no sequences"]),
    "empty": ("predict", lambda p: "", ["file is empty"]),
    "eval-fasta": ("evaluate", lambda p: f">r1\n{SEQ}\n", ["FASTA has no labels"]),
    "eval-bad-label": ("evaluate", lambda p: f"{SEQ}\t1\n{SEQ}\tyes\n", [":2:", "bad label 'yes'"]),
    "eval-three-columns": ("evaluate", lambda p: f"{SEQ}\t1\t0\n", [":1:", "found 3"]),
    "eval-empty-seq": ("evaluate", lambda p: f"{SEQ}\t1\n\t0\n", [":2:", "empty sequence"]),
    "eval-invalid-char": ("evaluate", lambda p: f"{SEQ}\t1\nAC-GT\t0\n", [":2:", "'-'"]),
    "eval-100kb": ("evaluate", lambda p: f"{SEQ}\t1\n{'ACGT' * (LONG // 4)}\t0\n",
                   ["record 2", f"length {LONG}"]),
    "eval-no-rows": ("evaluate", lambda p: "seq\tlabel\n", ["no data rows"]),
}  # fmt: skip


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: f"bad-file-{c}")
def test_bad_input_file_is_named(case: str, model_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command, content, names = FILE_CASES[case]
    path = tmp_path / "input.txt"
    path.write_bytes(content(path).encode("latin-1"))
    output = ["--output", str(tmp_path / "out.tsv")] if command == "predict" else []
    assert_clean_error(run([command, "--run", model_run, "--input", str(path), *output], capsys), str(path), *names)


PATH_CASES = ["missing", "folder", "unreadable", "parent-is-file"]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("kind", PATH_CASES, ids=lambda k: f"bad-path-{k}")
def test_bad_input_path_is_named(
    kind: str, command: str, model_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    path = {"missing": tmp_path / "nowhere.fa", "folder": tmp_path, "unreadable": tmp_path / "locked.tsv",
            "parent-is-file": tmp_path / "file.tsv" / "x.tsv"}[kind]  # fmt: skip
    problem = {"missing": "does not exist", "folder": "is a folder", "unreadable": "not readable",
               "parent-is-file": "does not exist"}[kind]  # fmt: skip
    if kind == "unreadable":
        path.write_text(f"{SEQ}\t1\n")
        _unreadable(path, monkeypatch)
    if kind == "parent-is-file":
        path.parent.write_text("x")
    output = ["--output", str(tmp_path / "out.tsv")] if command == "predict" else []
    outcome = run([command, "--run", model_run, "--input", str(path), *output], capsys)
    assert_clean_error(outcome, str(path), problem)


@pytest.mark.parametrize("kind", ["missing-folder", "is-folder", "parent-is-file"], ids=lambda k: f"bad-output-{k}")
def test_bad_output_path_is_named(
    kind: str, model_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.fa"
    source.write_text(f">r1\n{SEQ}\n")
    (tmp_path / "afile").write_text("x")
    out = {"missing-folder": tmp_path / "missing" / "dir" / "x.tsv", "is-folder": tmp_path,
           "parent-is-file": tmp_path / "afile" / "x.tsv"}[kind]  # fmt: skip
    outcome = run(["predict", "--run", model_run, "--input", str(source), "--output", str(out)], capsys)
    assert_clean_error(outcome, str(out))


def test_unknown_run_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.fa"
    source.write_text(f">r1\n{SEQ}\n")
    outcome = run(["predict", "--run", "0123456789abcdef", "--input", str(source), "--output", "-"], capsys)
    assert_clean_error(outcome, "0123456789abcdef")


TRAIN_FILE_CASES: dict[str, tuple[Callable[[Path], str], list[str]]] = {
    # id: (data.train value written under the folder, names)
    "missing": (lambda d: str(d / "nowhere.tsv"), ["nowhere.tsv", "does not exist"]),
    "folder": (lambda d: str(d), ["is a folder"]),
    "empty": (lambda d: _write(d / "e.tsv", ""), ["e.tsv", "file is empty"]),
    "one-class": (lambda d: _write(d / "one.tsv", f"{SEQ}\t1\n{SEQ[::-1]}\t1\n"), ["one.tsv", "need both 0 and 1"]),
    "bad-label": (lambda d: _write(d / "lab.tsv", f"{SEQ}\t1\n{SEQ}\tpos\n"), ["lab.tsv:2:", "bad label 'pos'"]),
    "columns": (lambda d: _write(d / "col.tsv", f"{SEQ}\n"), ["col.tsv:1:", "found 1"]),
    "pair-label": (lambda d: f"2:{_write(d / 'p.fa', CLEAN_FA)}", ["'2:", "LABEL 0 or 1"]),
    "fasta-char": (lambda d: f"1:{_write(d / 'c.fa', BAD_FA)},0:{_write(d / 'n.fa', CLEAN_FA)}", ["c.fa:2:", "'Z'"]),
    "fasta-missing": (lambda d: f"1:{d / 'gone.fa'},0:{_write(d / 'n.fa', CLEAN_FA)}", ["gone.fa", "does not exist"]),
    "unset": (lambda d: "", ["data.train"]),
}  # fmt: skip


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", TRAIN_FILE_CASES, ids=lambda c: f"bad-train-file-{c}")
def test_bad_training_file_is_named(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    value, names = TRAIN_FILE_CASES[case]
    argv = ["train", "--task", "enhancers.files", "--model", "kmer_logreg", "--set", f"data.train={value(tmp_path)}"]
    assert_clean_error(run(argv, capsys), *names)


def test_unreadable_training_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "locked.tsv"
    path.write_text(f"{SEQ}\t1\n{SEQ[::-1]}\t0\n")
    _unreadable(path, monkeypatch)
    argv = ["train", "--task", "enhancers.files", "--model", "kmer_logreg", "--set", f"data.train={path}"]
    assert_clean_error(run(argv, capsys), str(path), "not readable")


def test_long_training_sequence_is_refused_without_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 100 kb record among 200 bp ones: refused by the model's length bound, not a T x T allocation."""
    rows = [*labelled_rows(np.random.default_rng(1), 60), ("ACGT" * (LONG // 4), 0)]
    path = tmp_path / "train.tsv"
    path.write_text("".join(f"{s}\t{y}\n" for s, y in rows))
    argv = ["train", "--task", "enhancers.files", "--model", "kmer_attention", "--set", f"data.train={path}",
            "--set", "data.test_fraction=0.5", "--set", "model.d_model=16", "--set", "train.progress=false",
            "--max-epochs", "1"]  # fmt: skip
    assert_clean_error(run(argv, capsys), f"length {LONG}", "kmer_attention", "1024")


# --- inputs that must be accepted: same scores as the clean form ---------------------------------------------------

CLEAN = [("r1", "ACGTTGCAACGGATAAGATAAGCT" * 8), ("r2", "TTGACCGTAGGCATCGATCGAATC" * 9), ("r3", "GATTACA" * 30)]


def fasta(records: list[tuple[str, str]], width: int = 0, newline: str = "\n") -> str:
    def lines(seq: str) -> list[str]:
        return [seq[i : i + width] for i in range(0, len(seq), width)] if width else [seq]

    return "".join(f">{rid}{newline}" + "".join(f"{part}{newline}" for part in lines(seq)) for rid, seq in records)


ACCEPTED_PREDICT: dict[str, Callable[[], bytes]] = {
    "crlf": lambda: fasta(CLEAN, newline="\r\n").encode(),
    "lowercase": lambda: fasta([(r, s.lower()) for r, s in CLEAN]).encode(),
    "wrapped": lambda: fasta(CLEAN, width=60).encode(),
    "bom": lambda: b"\xef\xbb\xbf" + fasta(CLEAN).encode(),
    "bom-crlf-wrapped-lower": lambda: b"\xef\xbb\xbf" + fasta([(r, s.lower()) for r, s in CLEAN], 50, "\r\n").encode(),
    "blank-lines": lambda: fasta(CLEAN).replace(">r2", "\n\n>r2").encode(),
}


def predicted(run_id: str, path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    outcome = run(["predict", "--run", run_id, "--input", str(path), "--output", "-"], capsys)
    assert outcome.code == 0, outcome.text
    return [line for line in outcome.text.splitlines() if line.startswith("r")]


@pytest.mark.parametrize("form", ACCEPTED_PREDICT, ids=lambda f: f"ok-predict-{f}")
def test_accepted_fasta_scores_as_clean(
    form: str, model_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean.fa"
    clean.write_text(fasta(CLEAN))
    folder = tmp_path / "with spaces in it"
    folder.mkdir()
    other = folder / f"{form} input.fa"
    other.write_bytes(ACCEPTED_PREDICT[form]())
    expected = predicted(model_run, clean, capsys)
    assert len(expected) == len(CLEAN)
    assert predicted(model_run, other, capsys) == expected


def evaluated(run_id: str, path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    outcome = run(["evaluate", "--run", run_id, "--input", str(path)], capsys)
    assert outcome.code == 0, outcome.text
    return [line for line in outcome.text.splitlines() if not line.startswith(str(len(CLEAN) * 2))]


ROWS = [(s, i % 2) for i, (_, s) in enumerate(CLEAN * 2)]


def tsv(rows: list[tuple[str, object]], newline: str = "\n") -> bytes:
    return "".join(f"{s}\t{y}{newline}" for s, y in rows).encode()


ACCEPTED_EVALUATE: dict[str, Callable[[], bytes]] = {
    "crlf": lambda: tsv(ROWS, "\r\n"),
    "bom-header-lowercase": lambda: b"\xef\xbb\xbf" + tsv([("seq", "label"), *((s.lower(), y) for s, y in ROWS)]),
}


@pytest.mark.parametrize("form", ACCEPTED_EVALUATE, ids=lambda f: f"ok-evaluate-{f}")
def test_accepted_tsv_evaluates_as_clean(
    form: str, model_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean.tsv"
    clean.write_bytes(tsv(ROWS))
    other = tmp_path / f"{form} input.tsv"
    other.write_bytes(ACCEPTED_EVALUATE[form]())
    expected = evaluated(model_run, clean, capsys)
    assert any(line.startswith("auroc") for line in expected), expected
    assert evaluated(model_run, other, capsys) == expected


def test_training_file_path_with_spaces_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ok-train-path-spaces`: a training TSV in a folder with spaces, CRLF and lower case, trains."""
    folder = tmp_path / "my data"
    folder.mkdir()
    path = folder / "train set.tsv"
    path.write_bytes("".join(f"{s.lower()}\t{y}\r\n" for s, y in labelled_rows(np.random.default_rng(2), 80)).encode())
    outcome = run(
        ["train", "--task", "enhancers.files", "--model", "kmer_logreg", "--set", f"data.train={path}"], capsys
    )
    assert outcome.code == 0, outcome.text
    assert "run_id: " in outcome.text


# --- memory bound of a batch, checked before allocating ------------------------------------------------------------


def test_attention_batch_over_the_memory_limit_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from harness.data.encode import BatchTooLargeError
    from harness.plugins import get_model
    from harness.spec import IOSpec

    plugin = get_model("kmer_attention")
    encoder = plugin.build(IOSpec("seq", (0,), 1, "binary"), **{**plugin.defaults, "max_len": 4096, "n_heads": 4})
    codes = torch.zeros(64, 4096, dtype=torch.uint8)
    monkeypatch.setenv("REGBENCH_MAX_BATCH_GB", "1")  # 64 x 4 heads x 4097^2 floats = 16 GiB
    with pytest.raises(BatchTooLargeError, match=r"weights of this batch would take 16.0 GiB.*batch_size"):
        encoder(codes, torch.ones_like(codes, dtype=torch.bool))
    monkeypatch.setenv("REGBENCH_MAX_BATCH_GB", "lots")
    with pytest.raises(ValueError, match="REGBENCH_MAX_BATCH_GB='lots' is not a number"):
        encoder(codes, torch.ones_like(codes, dtype=torch.bool))
