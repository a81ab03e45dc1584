"""The real DNABERT-2 and Nucleotide Transformer v2 folders (`../shared/lm_checkpoints`, weight-less) load on the
pinned transformers through `models.lm._checkpoint`: `regbench lm check --random-init --save` makes random-weight
copies of the tiny variants, the full-size configurations have the published parameter counts, the special-token
mask and padding come from the tokenizer, and the probe runs end to end (embed → cache → train → MLflow → predict).

The folder is `$REGBENCH_LM_CHECKPOINTS` (default `../shared/lm_checkpoints` beside the repository); without it these
tests skip, except under `CI=true`, where they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import models.lm._embeddings as emb
from harness.cli import main
from harness.config import parse_overrides
from harness.evaluation.reload import load_predictor
from harness.paths import DataNotFoundError
from harness.plugins import get_model, make_task
from harness.training.run import RunRequest, train_run
from models.lm._checkpoint import UnsupportedCheckpointError, count_parameters, load_backbone

ENV_VAR = "REGBENCH_LM_CHECKPOINTS"
TINY = {"dnabert2": "dnabert2-tiny", "nt": "nt-v2-tiny"}
FULL_PARAMS = {"dnabert2-117m": 117_068_544, "nt-v2-50m": 53_534_401}  # base model, random weights
TINY_PARAMS = {"dnabert2": 349_632, "nt": 477_129}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one torch thread avoids oversubscription (50x slower ops measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lm_root() -> Path:
    """`$REGBENCH_LM_CHECKPOINTS` or `../shared/lm_checkpoints`; skip (fail in CI) when it is absent."""
    folder = Path(os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[1].parent / "shared" / "lm_checkpoints")
    folder = folder.resolve()  # the error messages name the resolved folder
    if not all((folder / name / "config.json").is_file() for name in [*TINY.values(), *FULL_PARAMS]):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{folder} must hold the weight-less LM checkpoints in CI (set ${ENV_VAR})")
        pytest.skip(f"no weight-less LM checkpoints at {folder} (set ${ENV_VAR}, e.g. ../shared/lm_checkpoints)")
    return folder


@pytest.fixture(scope="session")
def tiny_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Random-weight, loadable copies of both tiny folders, made with `regbench lm check --random-init --save`."""
    root = lm_root()
    out = tmp_path_factory.mktemp("lm_copies")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `one_thread`, for the building only
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        copies = {}
        for key, name in TINY.items():
            assert main(["lm", "check", str(root / name), "--random-init", "--save", str(out / key), "--n", "2"]) == 0
            copies[key] = out / key
        torch.set_num_threads(threads)
        yield copies


def test_check_prints_the_architecture_params_and_throughput(
    tiny_copies: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for key, folder in tiny_copies.items():
        assert main(["lm", "check", str(folder), "--n", "3"]) == 0
        out = capsys.readouterr().out
        assert f"params: {TINY_PARAMS[key]}\n" in out
        assert ("BertModel" if key == "dnabert2" else "EsmModel") in out and "hidden 64" in out
        assert float(out.split("embed_seq_per_s: ")[1].split()[0]) > 0
        assert "its own weights" in out


def test_full_size_configurations_have_the_published_parameter_counts() -> None:
    for name, expected in FULL_PARAMS.items():
        backbone = load_backbone(lm_root() / name, meta=True)  # the real model code, parameters on `meta`
        assert count_parameters(backbone.encoder) == expected, name


def test_missing_pieces_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = lm_root() / TINY["dnabert2"]
    assert main(["lm", "check", str(source)]) == 2  # weight-less folder without --random-init
    err = capsys.readouterr().err
    assert f"checkpoint {source} has no weights" in err and "--random-init" in err
    broken = Path(shutil.copytree(source, tmp_path / "no_code"))
    (broken / "bert_layers.py").unlink()
    with pytest.raises(UnsupportedCheckpointError, match=r"no_code: config\.json's auto_map needs bert_layers\.py"):
        load_backbone(broken, random_init=True)
    no_tok = Path(shutil.copytree(source, tmp_path / "no_tokenizer"))
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(UnsupportedCheckpointError, match=r"no_tokenizer has no tokenizer"):
        load_backbone(no_tok, random_init=True)
    with pytest.raises(DataNotFoundError, match="has no weights"):
        emb.resolve_checkpoint(str(source))


def _encoder(folder: Path, max_length: int = 512) -> emb.Encoder:
    return emb.load_encoder(emb.EmbedSettings.create(str(folder), "mean", max_length, 4, "cpu"))


@pytest.mark.parametrize("key", list(TINY))
def test_special_tokens_and_padding_come_from_the_tokenizer(
    tiny_copies: dict[str, Path], key: str, rng: np.random.Generator
) -> None:
    encoder = _encoder(tiny_copies[key])
    tok = encoder.tokenizer
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (30, 7, 90)]
    win = encoder.windows(seqs)
    specials = set(tok.all_special_ids)
    for ids, special in zip(win.ids, win.special, strict=True):
        assert special == [int(i in specials) for i in ids]  # ACGT only: no [UNK], so specials = CLS/SEP
        assert ids[0] == tok.cls_token_id
        assert (ids[-1] == tok.sep_token_id) == (key == "dnabert2")  # NT-v2 adds no end token
    own = tok(seqs[:1], return_special_tokens_mask=True)
    if key == "nt":  # the bug worked around: EsmTokenizer's mask counts an EOS it never adds
        assert len(own["special_tokens_mask"][0]) == len(own["input_ids"][0]) + 1
    else:
        assert tok.pad_token_id == tok.convert_tokens_to_ids("[PAD]") == 3
    ids, attention, real = encoder.tokens.batch(win, [0, 1, 2])
    assert (ids[attention == 0] == tok.pad_token_id).all() and (attention == 0).any()
    assert not real[attention == 0].any()
    alone = encoder.embed(seqs[1:2])
    padded = encoder.embed(seqs)  # seqs[1] is padded in a batch with longer ones
    np.testing.assert_allclose(padded[1], alone[0], atol=1e-5)


@pytest.mark.parametrize("key", list(TINY))
def test_chunked_windows_keep_specials_and_weight_by_tokens(
    tiny_copies: dict[str, Path], key: str, rng: np.random.Generator
) -> None:
    encoder = _encoder(tiny_copies[key], max_length=12)
    seq = "".join(rng.choice(list("ACGT"), 300))
    win = encoder.windows([seq])
    assert len(win.ids) > 2 and all(len(w) <= 12 for w in win.ids)
    assert all(w[0] == encoder.tokenizer.cls_token_id for w in win.ids)
    vectors = []
    for ids, special in zip(win.ids, win.special, strict=True):
        t = torch.tensor([ids])
        with torch.no_grad():
            hidden = encoder.model(input_ids=t, attention_mask=torch.ones_like(t))[0][0]
        keep = ~torch.tensor(special, dtype=torch.bool)
        vectors.append((hidden[keep].sum(0), int(keep.sum())))
    expected = sum(v for v, _ in vectors) / sum(n for _, n in vectors)
    np.testing.assert_allclose(encoder.embed([seq])[0], expected.numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("key", "model"), [("dnabert2", "dnabert2_probe"), ("nt", "dnabert2_probe_sklearn")])
def test_probe_end_to_end(
    tiny_copies: dict[str, Path], key: str, model: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embed → train → MLflow; the same embeddings again from the cache; predict from sequences = from features."""
    loads: list[emb.EmbedSettings] = []
    real = emb.load_encoder
    monkeypatch.setattr(emb, "load_encoder", lambda spec: loads.append(spec) or real(spec))
    sets = parse_overrides([f"model.checkpoint={tiny_copies[key]}", "model.max_length=64", "data.n=50",
                            "train.progress=false", "train.device=cpu"])  # fmt: skip
    run_id = train_run(RunRequest("enhancers.synthetic", model, sets, max_epochs=1))
    metrics = MlflowClient(tracking_uri).get_run(run_id).data.metrics
    assert len(loads) == 1 and metrics["embed_sequences"] == 50 and metrics["embed_cache_hits"] == 0
    assert 0 <= metrics["test_auroc"] <= 1 and metrics["n_params"] == 64 + 1  # logistic regression on D = 64
    task = make_task("enhancers.synthetic", {"n": 50})
    plugin = get_model(model)
    again = plugin.featurize(task, task.splits(), **{**plugin.defaults, **sets["model"]})
    assert len(loads) == 1 and again.stats == {"embed_cache_hits": 3.0, "embed_sequences": 0.0}
    test = task.splits()["test"]
    predictor, _ = load_predictor(run_id, "cpu")
    np.testing.assert_allclose(predictor.score(test), predictor.score(again["test"]), atol=1e-5)


def test_probe_embeds_a_streamed_multilabel_task(tiny_copies: dict[str, Path], tracking_uri: str) -> None:
    """The chromatin tasks hand out memory-mapped datasets, not SeqDatasets: the probe reads them through `take`."""
    sets = parse_overrides([f"model.checkpoint={tiny_copies['dnabert2']}", "model.max_length=64", "data.n=120",
                            "data.length=60", "train.progress=false", "train.device=cpu"])  # fmt: skip
    run_id = train_run(RunRequest("chromatin.synthetic", "dnabert2_probe_sklearn", sets, max_epochs=1))
    metrics = MlflowClient(tracking_uri).get_run(run_id).data.metrics
    assert metrics["embed_sequences"] == 120 and 0 <= metrics["test_auroc_median"] <= 1
