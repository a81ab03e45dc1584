"""Study files: parsing, precedence of overrides, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.benchmark.study_file import StudyFileError, load_study
from tests.test_variants import write as write_variants

STUDIES = sorted((Path(__file__).parents[1] / "studies").glob("*.yaml"))
HEAD = """\
name: t
tasks:
  - enhancers.synthetic
models:
  - kmer_logreg
  - kmer_attention
"""  # lines 1-6; a case's extra text starts on line 7


NO_SHORTCUTS = "shortcuts: false\n"  # appended where a test counts cells: only the listed models


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_parses_cells_with_override_precedence(tmp_path: Path) -> None:
    extra = (
        "seeds: [0, 1]\n"
        "set: {data.n: 300, train.lr: 1e-3, train.batch_size: 32, train.schedule: linear}\n"
        "task_set:\n  enhancers.synthetic: {data.n: 400}\n"
        "model_set:\n  kmer_attention: {model.d_model: 16, data.n: 500}\n"
    )
    study = load_study(write(tmp_path, HEAD + "trials: 1\nmax_epochs: 1\n" + extra + NO_SHORTCUTS))
    assert (study.name, study.trials, study.max_epochs, study.concurrency) == ("t", 1, 1, 1)
    cells = study.cells()
    assert [(c.task, c.model, c.seeds, c.seed) for c in cells] == [  # one cell per model, refit with every seed
        ("enhancers.synthetic", "kmer_logreg", (0, 1), 0), ("enhancers.synthetic", "kmer_attention", (0, 1), 0),
    ]  # fmt: skip
    logreg, attention = cells[0].overrides, cells[1].overrides
    assert logreg == {"model": {}, "train": {"lr": 0.001, "batch_size": 32, "schedule": "linear"}, "data": {"n": 400}}
    assert attention["model"] == {"d_model": 16} and attention["data"] == {"n": 500}
    assert study.lines["kmer_attention"] == 6


def test_name_defaults_to_file_stem_and_quoted_scalars_stay_strings(tmp_path: Path) -> None:
    assert load_study(write(tmp_path, HEAD.replace("name: t\n", "\n"))).name == "study"
    assert load_study(write(tmp_path, HEAD.replace("name: t", "name: '123'"))).name == "123"


BAD = [
    ("modles: [kmer_logreg]\n", 7, "unknown key 'modles'"),
    ("trials: 0\n", 7, "trials='0': must be an integer in [1, 10000]"),
    ("max_epochs: 1.5\n", 7, "max_epochs='1.5': must be an integer in [1, 100000]"),
    ("concurrency: two\n", 7, "concurrency='two'"),
    ("trials: true\n", 7, "must be an integer"),
    ("cpus_per_trial: 0\n", 7, "must be a number > 0"),
    ("seeds: [0, 0]\n", 7, "duplicate"),
    ("seeds: 3\n", 7, "seeds must be a non-empty list"),
    ("set:\n  train.lr: 1e-3\n  model.bogus: 1\n", 9, "unknown model setting(s) model.bogus"),
    ("set:\n  model.d_model: 16\n", 8, "cell enhancers.synthetic × kmer_logreg: unknown model setting(s) model.d_"),
    ("set:\n  data.n: [1, 2]\n", 8, "set: data.n must be a scalar"),
    ("set:\n  data.n: many\n", 8, "data.n='many': expected int"),
    ("set:\n  train.lr: -1\n", 8, "train.lr=-1.0 is invalid: must be > 0"),
    ("set:\n  lr: 0.1\n", 8, "'lr' must be NAMESPACE.KEY"),
    ("set:\n  train.max_epochs: 3\n", 8, "train.max_epochs is set by the top-level max_epochs"),
    ("set:\n  data.n: 10\n", 8, "data.n=10 is invalid: must be an integer >= 50"),
    ("task_set:\n  enhancers.cohn: {data.source: tsv}\n", 8, "task 'enhancers.cohn' is not in this study's tasks"),
    ("model_set:\n  kmer_atention: {model.k: 3}\n", 8, "Did you mean kmer_attention"),
    ("model_set:\n  kmer_attention:\n    model.k: [3]\n", 9, "must be a scalar"),
    ("trials: 1\ntrials: 2\n", 8, "duplicate key 'trials' (first on line 7)"),
    ("set: {a: [1}\n", 7, "not valid YAML"),
    ("splits: [chromosome]\n", 7, "cell enhancers.synthetic[chromosome] × kmer_logreg: data.split='chromosome'"),
    ("tiny: 1\n", 7, "tiny='1': must be true or false"),
    ("tiny: 'true'\n", 7, "tiny='true': must be true or false (unquoted)"),
    ("tiny: [true]\n", 7, "tiny must be a scalar"),
    ("variants:\n  - {name: snps, path: nowhere.tsv}\n", 8, "variants entry 'snps': "),
    ("variants:\n  - {path: v.tsv, genom: hg38.fa}\n", 8, "variants entry: genom: the keys are path, name, genome"),
    ("variants: v.tsv\n", 7, "variants must be a non-empty list"),
]


@pytest.mark.parametrize(("extra", "line", "message"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_study_names_file_and_line(tmp_path: Path, extra: str, line: int, message: str) -> None:
    path = write(tmp_path, HEAD + extra)
    with pytest.raises(StudyFileError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert message in str(err.value)
    assert err.value.line == line


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("tasks:\n  - enhancers.synthetic\n  - enhancers.synthtic\nmodels: [kmer_logreg]\n", 3,
         "unknown task 'enhancers.synthtic'. Did you mean enhancers.synthetic"),
        ("tasks: [enhancers.synthetic]\nmodels: [kmer_logreg, kmer_logreg]\n", 2, "'kmer_logreg' is listed twice"),
        ("tasks: [enhancers.synthetic]\n", 1, "missing required key 'models'"),
        # the task factory's error names no key of the file: blame the task's entry
        ("tasks:\n  - enhancers.synthetic\n  - enhancers.files\nmodels: [kmer_logreg]\n", 3,
         "cell enhancers.files × kmer_logreg: enhancers.files needs data.train"),
        ("", 1, "empty study file"),
        ("- a\n- b\n", 1, "study file must be a mapping"),
        ("name: ''\ntasks: [enhancers.synthetic]\nmodels: [kmer_logreg]\n", 1, "experiment) '' is invalid"),
    ],
)  # fmt: skip
def test_bad_top_level(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StudyFileError, match=rf"^{path}:{line}: .*") as err:
        load_study(path)
    assert message in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"study file .*nope\.yaml"):
        load_study(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_shipped_studies_validate(path: Path) -> None:
    from harness.benchmark.cross import validate

    study = load_study(path)
    validate(study)  # every cell also passes harness.tuning.search.validate_study
    assert study.name == path.stem and study.cells()


def test_smoke_study_covers_every_synthetic_task_and_model() -> None:
    from harness.plugins import MODELS, TASKS

    study = load_study(Path(__file__).parents[1] / "studies" / "smoke.yaml")
    assert set(study.tasks) == {name for name in TASKS.names() if name.endswith(".synthetic")}
    assert set(study.models) == set(MODELS.names())


def test_tiny_applies_each_models_tiny_settings_under_the_files_own(tmp_path: Path) -> None:
    from harness.plugins import MODELS

    extra = "tiny: true\nset: {model.k: 5}\nmodel_set:\n  kmer_attention: {model.d_model: 32}\n"
    study = load_study(write(tmp_path, HEAD + extra + NO_SHORTCUTS))
    assert study.tiny
    logreg, attention = (c.overrides["model"] for c in study.cells())
    assert MODELS.get("kmer_attention").tiny["k"] != 5 and MODELS.get("kmer_attention").tiny["d_model"] != 32
    assert logreg == {**MODELS.get("kmer_logreg").tiny, "k": 5}
    assert attention == {**MODELS.get("kmer_attention").tiny, "k": 5, "d_model": 32}
    assert study.effective("enhancers.synthetic", "kmer_attention")["model.head_dim"].line == 7  # the tiny key
    for off in (HEAD + NO_SHORTCUTS, HEAD + "tiny: false\n" + NO_SHORTCUTS):
        assert [c.overrides["model"] for c in load_study(write(tmp_path, off)).cells()] == [{}, {}]


def test_smoke_study_runs_every_models_tiny_variant() -> None:
    from harness.plugins import MODELS

    study = load_study(Path(__file__).parents[1] / "studies" / "smoke.yaml")
    assert study.tiny
    for cell in study.cells():
        explicit = {e.key.removeprefix("model."): e.value for e in study.per_model.get(cell.model, ())}
        assert cell.overrides["model"] == {**MODELS.get(cell.model).tiny, **explicit}, cell.label


EPI_HEAD = "name: s\ntasks: [epi.synthetic]\nmodels: [kmer_logreg]\n"  # lines 1-3


def test_splits_cross_every_cell_with_data_split(tmp_path: Path) -> None:
    study = load_study(
        write(
            tmp_path,
            EPI_HEAD + "seeds: [0, 1]\nsplits: [chromosome, random]\nset: {data.enhancer_window: 200}\n" + NO_SHORTCUTS,
        )
    )
    cells = study.cells()
    assert [(c.split, c.seeds) for c in cells] == [("chromosome", (0, 1)), ("random", (0, 1))]
    assert all(c.overrides["data"] == {"enhancer_window": 200, "split": c.split} for c in cells)
    assert cells[1].label == "epi.synthetic[random] × kmer_logreg"
    assert load_study(write(tmp_path, EPI_HEAD)).cells()[0].split == ""


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("splits:\n  - chromosome\n  - diagonal\n", 6, "cell epi.synthetic[diagonal] × kmer_logreg: data.split="),
        ("splits: [random, random]\n", 4, "splits: 'random' is listed twice"),
        ("splits: random\n", 4, "splits must be a non-empty list"),
        ("set: {data.split: random}\nsplits: [chromosome]\n", 4, "data.split is set here and by splits (line 5)"),
    ],
)  # fmt: skip
def test_bad_splits_name_the_line(tmp_path: Path, extra: str, line: int, message: str) -> None:
    path = write(tmp_path, EPI_HEAD + extra)
    with pytest.raises(StudyFileError, match=rf"^{path}:{line}: ") as err:
        load_study(path)
    assert message in str(err.value)


def test_shortcut_baselines_join_every_board_that_accepts_them(tmp_path: Path) -> None:
    """By default each task's board gets the shortcuts whose check_io accepts it, without the file's model.*
    settings; listed shortcuts are not added twice; `shortcuts: false` leaves them out."""
    tasks = "name: s\ntasks: [enhancers.synthetic, epi.synthetic, chromatin.synthetic]\n"
    text = (
        tasks
        + "models: [kmer_logreg, kmer_attention]\nset: {model.k: 3}\ntask_set: {enhancers.synthetic: {data.n: 300}}\n"
    )
    study = load_study(write(tmp_path, text))
    shortcuts = {t: study.models_of(t)[2:] for t in study.tasks}
    assert shortcuts == {
        "enhancers.synthetic": ("gc_length", "length_only"),
        "chromatin.synthetic": (),
        "epi.synthetic": ("element_propensity", "epi_distance", "gc_length", "length_only"),
    }
    length_only = next(c for c in study.cells() if c.model == "length_only")
    assert length_only.overrides["model"] == {} and length_only.overrides["data"] == {"n": 300}
    listed = load_study(write(tmp_path, tasks + "models: [kmer_logreg, gc_length]\n"))
    assert listed.models_of("enhancers.synthetic") == ("kmer_logreg", "gc_length", "length_only")
    off = load_study(write(tmp_path, text + "shortcuts: false\n"))
    assert all(off.models_of(t) == ("kmer_logreg", "kmer_attention") for t in off.tasks)
    with pytest.raises(StudyFileError, match=r"study.yaml:6: shortcuts='no'"):
        load_study(write(tmp_path, text + "shortcuts: 'no'\n"))


def test_a_bad_variant_file_is_named_by_the_study_line_before_any_work(tmp_path: Path) -> None:
    write_variants(tmp_path / "v.tsv", ["a\tACGTACGT\t2\tC\tG\t1", "b\tACGTACGT\t3\tGT\tG\t0"])
    study = tmp_path / "s.yaml"
    study.write_text("tasks: [enhancers.synthetic]\nmodels: [kmer_logreg]\nvariants:\n  - {path: v.tsv}\n")
    with pytest.raises(StudyFileError, match=r"s.yaml:4: variants entry 'v': variants file .*v.tsv: 1 indel\(s\) "
                       r"refused .* e.g. line 3 \(id b\)"):  # fmt: skip
        load_study(study)
    write_variants(tmp_path / "v.tsv", ["a\tACGTACGT\t2\tC\tG\t1"])
    study.write_text(study.read_text() + "  - {path: v.tsv}\n")
    with pytest.raises(StudyFileError, match=r"s.yaml:5: variants: name 'v' is listed twice"):
        load_study(study)
    study.write_text(study.read_text().replace("  - {path: v.tsv}\n", "", 1))
    assert [(v.name, v.path, v.genome, v.line) for v in load_study(study).variants] == [
        ("v", str(tmp_path / "v.tsv"), "", 4)
    ]
