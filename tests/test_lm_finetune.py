"""`lm_finetune` on random-weight copies of the real DNABERT-2 and NT-v2 tiny folders: full and LoRA fine-tuning
through the normal training loop → MLflow → `regbench predict`, which parameters train, pair and multi-label heads,
chunked long inputs (same vectors as the frozen probe's), and gradient checkpointing (same gradients)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import models.lm._embeddings as emb
from harness.cli import main
from harness.config import ConfigError, parse_overrides
from harness.data.datasets import Seqs
from harness.evaluation.reload import load_predictor
from harness.plugins import get_model, make_task
from harness.spec import IOSpec
from harness.training.modeling import build_model
from harness.training.run import RunRequest, train_run
from harness.tuning.search_space import searched_names
from models.lm.finetune import LMEncoder
from tests.test_lm_checkpoints import TINY_PARAMS, one_thread, tiny_copies  # noqa: F401  (fixtures)

IO = IOSpec("seq", (0,), 1, "binary")


def hp(folder: Path, **overrides: Any) -> dict[str, Any]:
    plugin = get_model("lm_finetune")
    return {**plugin.defaults, **plugin.tiny, "checkpoint": str(folder), "dropout": 0.0, **overrides}


def inputs(seqs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """`codes (B, L)` int64 and `mask (B, L)` bool, as the training loop hands them to an encoder."""
    branch = Seqs.from_strings(seqs)
    codes = torch.from_numpy(branch.codes.astype(np.int64))
    return codes, torch.arange(codes.shape[1])[None, :] < torch.from_numpy(branch.lengths)[:, None]


@pytest.mark.slow
@pytest.mark.parametrize(("key", "method"), [("dnabert2", "full"), ("nt", "lora")])
def test_finetune_trains_logs_and_predicts(
    tiny_copies: dict[str, Path],  # noqa: F811
    key: str,
    method: str,
    tracking_uri: str,
    tmp_path: Path,
) -> None:
    sets = [f"model.checkpoint={tiny_copies[key]}", f"model.method={method}", "model.max_length=64", "data.n=50",
            "train.progress=false", "train.device=cpu"]  # fmt: skip
    run_id = train_run(RunRequest("enhancers.synthetic", "lm_finetune", parse_overrides(sets), max_epochs=1))
    metrics = MlflowClient(tracking_uri).get_run(run_id).data.metrics
    assert 0 <= metrics["test_auroc"] <= 1 and metrics["epochs_run"] == 1
    predictor, _ = load_predictor(run_id, "cpu")
    encoder = predictor.model.encoder
    assert isinstance(encoder, LMEncoder)
    counts = encoder.param_counts()
    if method == "lora":
        assert counts["frozen"] == TINY_PARAMS[key] and 0 < counts["trainable"] < TINY_PARAMS[key] // 10
    else:
        assert counts == {"trainable": TINY_PARAMS[key], "frozen": 0}
    initial = LMEncoder(encoder.settings).backbone.state_dict()  # the checkpoint's own weights
    base = [k for k in initial if "lora_" not in k]
    changed = [k for k in base if not torch.equal(encoder.backbone.state_dict()[k], initial[k])]
    assert changed if method == "full" else not changed, "full tuning changes the base weights, LoRA never does"
    test = make_task("enhancers.synthetic", {"n": 50}).splits()["test"]
    fasta = tmp_path / "test.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in zip(test.ids, emb.sequences(test.seqs[0]), strict=True)))
    out = tmp_path / "scores.tsv"
    assert main(["predict", "--run", run_id, "--input", str(fasta), "--output", str(out), "--device", "cpu"]) == 0
    scores = np.loadtxt(out, skiprows=1, usecols=1)
    np.testing.assert_allclose(scores, predictor.score(test), atol=1e-5)
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="predictions/test.tsv"),
                         sep="\t")  # fmt: skip
    np.testing.assert_allclose(scores, logged["score"].to_numpy(), atol=1e-5)  # the reloaded model = the trained one


@pytest.mark.parametrize("key", ["dnabert2", "nt"])
def test_pair_multilabel_lora_trains_only_adapters_and_head(
    tiny_copies: dict[str, Path],  # noqa: F811
    key: str,
    rng: np.random.Generator,
) -> None:
    """EPI-style pair inputs through the siamese adapter, three labels; gradients reach LoRA and the head only."""
    io = IOSpec("seq_pair", (0, 0), 3, "multilabel")
    model = build_model(get_model("lm_finetune"), io, hp(tiny_copies[key], method="lora"))
    assert model.siamese
    enh = inputs(["".join(rng.choice(list("ACGT"), n)) for n in (40, 25, 60)])
    prom = inputs(["".join(rng.choice(list("ACGT"), n)) for n in (20, 30, 10)])
    logits = model(*enh, *prom)
    assert logits.shape == (3, 3)
    logits.sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is not None for n in grads if "lora_" in n or n.startswith("head."))
    assert all(grads[n] is None for n in grads if "lora_" not in n and not n.startswith("head."))
    assert any(grads[n].abs().sum() > 0 for n in grads if "lora_B" in n)


@pytest.mark.parametrize("key", ["dnabert2", "nt"])
def test_long_inputs_are_chunked_like_the_probe(
    tiny_copies: dict[str, Path],  # noqa: F811
    key: str,
    rng: np.random.Generator,
) -> None:
    encoder = get_model("lm_finetune").build(IO, **hp(tiny_copies[key], method="full", max_length=12)).eval()
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (300, 35)]
    with torch.no_grad():
        got = encoder(*inputs(seqs)).numpy()
    frozen = emb.load_encoder(emb.EmbedSettings.create(str(tiny_copies[key]), "mean", 12, 4, "cpu"))
    assert len(frozen.windows(seqs).ids) > 5  # several windows per long sequence
    np.testing.assert_allclose(got, frozen.embed(seqs), atol=1e-5)


@pytest.mark.parametrize("key", ["dnabert2", "nt"])
def test_gradient_checkpointing_gives_the_same_gradients(
    tiny_copies: dict[str, Path],  # noqa: F811
    key: str,
    rng: np.random.Generator,
) -> None:
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (50, 80)]
    grads = []
    for checkpointing in (False, True):
        encoder = get_model("lm_finetune").build(IO, **hp(tiny_copies[key], method="full",
                                                           gradient_checkpointing=checkpointing))  # fmt: skip
        encoder.eval()  # no dropout: both passes see the same function
        encoder(*inputs(seqs)).pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-6, rtol=1e-5, msg=name)


def test_settings_are_checked_before_any_data_loads(tiny_copies: dict[str, Path]) -> None:  # noqa: F811
    plugin = get_model("lm_finetune")
    with pytest.raises(ConfigError, match=r"model\.method='adapter' is not one of full, lora"):
        plugin.check(hp(tiny_copies["nt"], method="adapter"))
    with pytest.raises(ConfigError, match=r"model\.pooling='max'"):
        plugin.check(hp(tiny_copies["nt"], pooling="max"))
    assert {"model.lora_rank", "model.lora_alpha", "model.lora_dropout", "model.pooling", "train.lr"} <= set(
        searched_names(plugin, {})
    )


@pytest.mark.parametrize("key", ["dnabert2", "nt"])
def test_bf16_autocast_matches_fp32(
    tiny_copies: dict[str, Path],  # noqa: F811
    key: str,
    rng: np.random.Generator,
) -> None:
    """The dtype path `train.amp` takes on CUDA (bf16 autocast), here on CPU, with chunking and checkpointing."""
    model = build_model(get_model("lm_finetune"), IO, hp(tiny_copies[key], method="lora", max_length=24,
                                                         gradient_checkpointing=True)).eval()  # fmt: skip
    batch = inputs(["".join(rng.choice(list("ACGT"), n)) for n in (150, 60, 90)])
    fp32 = model(*batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model(*batch)
    bf16.float().sum().backward()
    torch.testing.assert_close(bf16.float(), fp32, atol=0.05, rtol=0.05)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_pickled_encoder_rebuilds_and_refuses_a_changed_folder(
    tiny_copies: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = Path(shutil.copytree(tiny_copies["dnabert2"], tmp_path / "copy"))
    encoder = get_model("lm_finetune").build(IO, **hp(folder, method="lora")).eval()
    batch = inputs(["ACGTTGCAAGGCTTACGATCGATCGGGCTA", "TTGACCA"])
    blob = pickle.dumps(encoder)
    with torch.no_grad():
        torch.testing.assert_close(pickle.loads(blob).eval()(*batch), encoder(*batch))
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    with pytest.raises(ConfigError, match="changed since this model was trained"):
        pickle.loads(blob)


@pytest.mark.parametrize("key", ["dnabert2", "nt"])
def test_layer_decay_groups_and_logged_parameter_counts(tiny_copies: dict[str, Path], key: str) -> None:  # noqa: F811
    """Layer i of n trains at lr · decay^(n - i), the embeddings at lr · decay^(n + 1), the head at lr; every
    trainable parameter is in exactly one optimiser group; the encoder reports trainable vs frozen counts."""
    from harness.training.fit import _parameter_groups

    lr, decay = 1e-4, 0.5
    model = build_model(get_model("lm_finetune"), IO, hp(tiny_copies[key], method="full", layer_decay=decay))
    groups = _parameter_groups(model, lr)
    n = len(groups) - 2  # the layers, then the embeddings (rest of the encoder), then the head
    assert n == 2  # both tiny configurations have 2 layers
    assert [g["lr"] for g in groups] == pytest.approx([lr * decay**2, lr * decay, lr * decay**3, lr])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert {id(p) for p in model.head.parameters()} <= {id(p) for p in groups[-1]["params"]}
    assert _parameter_groups(build_model(get_model("lm_finetune"), IO, hp(tiny_copies[key])), lr)[0]["lr"] == lr
    lora = build_model(get_model("lm_finetune"), IO, hp(tiny_copies[key], method="lora")).encoder.run_metrics()
    assert lora["encoder_trainable_params"] > 0 and lora["encoder_frozen_params"] == TINY_PARAMS[key]
    with pytest.raises(ConfigError, match="layer_decay"):
        get_model("lm_finetune").check(hp(tiny_copies[key], layer_decay=1.5))
