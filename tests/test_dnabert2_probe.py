"""The language-model probe (DNABERT-2, Zhou et al. 2023) on a tiny random BERT checkpoint built on the fly:
loading and the missing-checkpoint error, pooling against a manual computation, chunking of long sequences, the
embedding cache, pair tasks, and end-to-end training → MLflow → `regbench predict` for both heads."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import models.lm._embeddings as emb
from harness.cli import main
from harness.config import ConfigError, parse_overrides
from harness.data.datasets import SeqDataset, Seqs
from harness.evaluation.reload import load_predictor
from harness.paths import DataNotFoundError
from harness.plugins import get_model, make_task
from harness.training.run import RunRequest, train_run
from tests.conftest import random_seqs

HIDDEN = 32
MAX_TOKENS = 16  # tiny window: 14 bases + [CLS] + [SEP]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A random-weight 2-layer BERT (hidden 32) with a one-token-per-base tokenizer; no network ever."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield emb.write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_bert"), hidden=HIDDEN, max_tokens=64)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[emb.EmbedSettings]:
    """Records every encoder load (the only way to reach the model's forward)."""
    calls: list[emb.EmbedSettings] = []
    real = emb.load_encoder

    def counting(spec: emb.EmbedSettings) -> emb.Encoder:
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr(emb, "load_encoder", counting)
    return calls


def spec(checkpoint: Path, pooling: str = "mean", max_length: int = 64) -> emb.EmbedSettings:
    return emb.EmbedSettings.create(str(checkpoint), pooling, max_length, 4, "cpu")


def manual_hidden(encoder: emb.Encoder, seq: str) -> torch.Tensor:
    """Last hidden states `(T, D)` of `[CLS] seq [SEP]` run alone (no padding)."""
    ids = torch.tensor([[2, *("ACGTN".index(c) + 5 for c in seq), 3]])
    with torch.no_grad():
        return encoder.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]


def test_missing_checkpoint_says_what_to_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(emb.ENV_VAR, raising=False)
    plugin = get_model("dnabert2_probe")
    with pytest.raises(DataNotFoundError, match="huggingface-cli download zhihan1996/DNABERT-2-117M") as err:
        plugin.featurize(PairTask(), {}, **plugin.defaults)
    assert emb.ENV_VAR in str(err.value) and "model.checkpoint=" in str(err.value)
    with pytest.raises(DataNotFoundError, match=r"no config\.json"):
        emb.resolve_checkpoint(str(tmp_path / "nowhere"))
    monkeypatch.setenv(emb.ENV_VAR, str(tmp_path))
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path))):
        emb.resolve_checkpoint("")


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_matches_a_manual_computation(checkpoint: Path, pooling: str, rng: np.random.Generator) -> None:
    """Mean over real tokens only ([CLS], [SEP] and padding excluded); batches mix lengths, so padding occurs."""
    encoder = emb.load_encoder(spec(checkpoint, pooling))
    seqs = [*random_seqs(rng, 3, 30), "ACGTN", *random_seqs(rng, 2, 50)]
    got = encoder.embed(seqs)  # (N, D)
    assert got.shape == (len(seqs), HIDDEN) and got.dtype == np.float32
    for i, s in enumerate(seqs):
        hidden = manual_hidden(encoder, s)  # (T, D)
        expected = hidden[1:-1].mean(0) if pooling == "mean" else hidden[0]
        np.testing.assert_allclose(got[i], expected.numpy(), atol=1e-5, err_msg=f"sequence {i}")
    with_specials = np.stack([manual_hidden(encoder, s).mean(0).numpy() for s in seqs])
    assert pooling == "cls" or not np.allclose(got, with_specials, atol=1e-3), "special tokens entered the mean"


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_long_sequences_are_chunked_and_weighted(checkpoint: Path, pooling: str, rng: np.random.Generator) -> None:
    encoder = emb.load_encoder(spec(checkpoint, pooling, max_length=MAX_TOKENS))
    seqs = [random_seqs(rng, 1, 40)[0], "ACGTACGTAC"]
    windows = encoder.windows(seqs)
    assert windows.owner.tolist() == [0, 0, 0, 1]  # 40 bases → 14 + 14 + 12
    assert [len(w) for w in windows.ids] == [16, 16, 14, 12]
    assert all(w[0] == 2 and w[-1] == 3 for w in windows.ids)  # each window keeps [CLS] ... [SEP]
    got = encoder.embed(seqs)
    parts = [seqs[0][0:14], seqs[0][14:28], seqs[0][28:40]]
    vectors = [manual_hidden(encoder, p)[1:-1].mean(0) if pooling == "mean" else manual_hidden(encoder, p)[0]
               for p in parts]  # fmt: skip
    expected = sum(v * len(p) for v, p in zip(vectors, parts, strict=True)) / 40
    np.testing.assert_allclose(got[0], expected.numpy(), atol=1e-5)
    long_spec = spec(checkpoint, pooling, max_length=64)
    assert not np.allclose(got[0], emb.load_encoder(long_spec).embed(seqs[:1])[0], atol=1e-3), "not chunked?"


def pair_dataset(rng: np.random.Generator, n: int) -> SeqDataset:
    branches = (Seqs.from_strings(random_seqs(rng, n, 30)), Seqs.from_strings(random_seqs(rng, n, 20)))
    labels = (rng.random((n, 3)) < 0.5).astype(np.float32)  # multi-label targets pass through
    return SeqDataset(branches, labels, np.array([f"p{i}" for i in range(n)]))


class PairTask:
    name = "epi.tiny"


def test_cache_pair_branches_and_stats(
    checkpoint: Path, loads: list[emb.EmbedSettings], rng: np.random.Generator
) -> None:
    splits = {"train": pair_dataset(rng, 9), "val": pair_dataset(rng, 5)}
    plugin = get_model("dnabert2_probe")
    hp: dict[str, Any] = {**plugin.defaults, **plugin.tiny, "checkpoint": str(checkpoint)}
    first = plugin.featurize(PairTask(), splits, **hp)
    assert len(loads) == 1 and first.stats["embed_sequences"] == 28 and first.stats["embed_cache_hits"] == 0
    assert first.stats["embed_seq_per_s"] > 0 and first.stats["embed_peak_rss_mb"] > 0
    train = first["train"]
    assert train.features.shape == (9, 2 * HIDDEN)
    np.testing.assert_array_equal(train.labels, splits["train"].labels)
    encoder = emb.load_encoder(spec(checkpoint, max_length=64))
    branch1 = encoder.embed(emb.sequences(splits["train"].seqs[1]))
    np.testing.assert_allclose(train.features[:, HIDDEN:], branch1, atol=1e-6)  # promoter half = branch 1 alone
    loads.clear()
    second = plugin.featurize(PairTask(), splits, **hp)
    assert loads == [], "second featurize re-ran the encoder instead of reading the cache"
    assert second.stats == {"embed_cache_hits": 4.0, "embed_sequences": 0.0}
    np.testing.assert_array_equal(second["train"].features, train.features)
    plugin.featurize(PairTask(), splits, **{**hp, "pooling": "cls"})
    assert len(loads) == 1, "a different pooling must not reuse the mean-pooled cache"


def test_changed_checkpoint_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(checkpoint, tmp_path / "copy"))
    frozen = spec(copy)
    assert frozen.digest == spec(checkpoint).digest  # content digest, not path or mtime
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    with pytest.raises(ConfigError, match="changed since"):
        emb.load_encoder(frozen)


@pytest.mark.slow
def test_train_log_and_predict_both_heads(
    checkpoint: Path, loads: list[emb.EmbedSettings], tmp_path: Path, tracking_uri: str
) -> None:
    """Torch head end to end, then the sklearn head on the same embeddings (cache only), then predict both."""
    sets = [f"model.checkpoint={checkpoint}", "model.max_length=64", "data.n=60",
            "train.progress=false", "train.device=cpu"]  # fmt: skip
    torch_run = train_run(RunRequest("enhancers.synthetic", "dnabert2_probe", parse_overrides(sets), max_epochs=2))
    assert len(loads) == 1
    metrics = MlflowClient(tracking_uri).get_run(torch_run).data.metrics
    assert metrics["embed_seq_per_s"] > 0 and metrics["embed_sequences"] == 60
    assert 0 <= metrics["test_auroc"] <= 1 and metrics["n_params"] == HIDDEN + 1  # the head only
    loads.clear()
    sk_run = train_run(RunRequest("enhancers.synthetic", "dnabert2_probe_sklearn", parse_overrides(sets)))
    assert loads == [], "the sklearn probe should reuse the cached embeddings"
    assert MlflowClient(tracking_uri).get_run(sk_run).data.metrics["embed_cache_hits"] == 3

    task = make_task("enhancers.synthetic", {"n": 60})
    test = task.splits()["test"]
    fasta = tmp_path / "test.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in zip(test.ids, emb.sequences(test.seqs[0]), strict=True)))
    for run_id, model in ((torch_run, "dnabert2_probe"), (sk_run, "dnabert2_probe_sklearn")):
        predictor, meta = load_predictor(run_id, "cpu")
        features = get_model(model).featurize(task, {"test": test}, **meta["hp"])["test"]
        from_features = predictor.score(features)
        from_sequences = predictor.score(test)  # re-embeds with the recorded checkpoint
        np.testing.assert_allclose(from_sequences, from_features, atol=1e-5)
        out = tmp_path / f"{model}.tsv"
        assert main(["predict", "--run", run_id, "--input", str(fasta), "--output", str(out), "--device", "cpu"]) == 0
        scores = np.loadtxt(out, skiprows=1, usecols=1)
        np.testing.assert_allclose(scores, from_features, atol=1e-5)
