"""Shortcut baselines: the plugin contract, features by hand, and the EPI element-propensity leak of a random split."""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest

from harness.data.datasets import SeqDataset, Seqs
from harness.plugins import get_model, make_task, shortcut_models
from harness.spec import IOSpec
from harness.tracking import store
from harness.training.modeling import IncompatibleError, check_compatible
from harness.training.run import RunRequest, train_run
from models.shortcuts import ElementRates, distance_features, fit_element_propensity, sequence_features

PAIR_IO = IOSpec("seq_pair", (4, 4), 1, "binary")


@pytest.mark.parametrize("name", shortcut_models())
def test_plugin_contract(name: str) -> None:
    plugin = get_model(name)
    params = inspect.signature(plugin.fit_sklearn).parameters
    keyword = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword == set(plugin.defaults) and set(plugin.tiny) <= set(plugin.defaults)
    assert all(params[k].default is inspect.Parameter.empty for k in keyword)
    assert set(plugin.search_space(FixedTrial())) <= set(plugin.defaults)


class FixedTrial:
    """The optuna trial interface, answering each suggestion with its lower bound."""

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return low


def pair_dataset(ids: list[str], labels: list[int], seqs: tuple[list[str], list[str]] | None = None) -> SeqDataset:
    e, p = seqs or (["ACGT"] * len(ids), ["ACGT"] * len(ids))
    return SeqDataset((Seqs.from_strings(e), Seqs.from_strings(p)), np.array(labels, np.float32), np.array(ids))


def test_gc_and_length_features_by_hand() -> None:
    ds = pair_dataset(["a::b", "c::d"], [0, 1], (["GGCCAT", "ACGTNN"], ["GC", "ATATAT"]))
    # enhancer: GC 4/6, length 6 | GC 2 of 4 called bases, length 6 (N counts in length, not in GC)
    expected = np.array([[4 / 6, 6, 1.0, 2], [2 / 4, 6, 0.0, 6]])
    np.testing.assert_allclose(sequence_features(ds), expected)


def test_distance_features_from_pair_ids() -> None:
    ids = ["NHEK|chr1:1000-1200::NHEK|chr1:11000-11200", "NHEK|chr2:500-700::NHEK|chr2:400-600@shift+3,-1"]
    np.testing.assert_allclose(distance_features(pair_dataset(ids, [1, 0])), [[np.log10(10001)], [np.log10(101)]])
    with pytest.raises(ValueError, match="joins two chromosomes"):
        distance_features(pair_dataset(["c|chr1:0-10::c|chr2:0-10"], [0]))
    with pytest.raises(ValueError, match="needs enhancer–promoter pair ids"):
        distance_features(pair_dataset(["17"], [0]))


def test_element_rates_are_smoothed_left_one_out_and_skip_shifted_copies() -> None:
    ids = np.array(["e1::p1", "e1::p2", "e2::p1", "e1::p1@shift+1,+0"])
    y = np.array([1, 0, 0, 1])
    rates = ElementRates(ids, y, prior_strength=1.0)  # the shifted copy is not counted: prior 1/3
    prior = 1 / 3

    def logit(r: float) -> float:
        return np.log(r / (1 - r))

    # e1: 1 positive of 2, p1: 1 of 2; an unseen element gets the prior
    got = rates.logits(np.array(["e1::p1", "e9::p2"]))
    np.testing.assert_allclose(got, [[logit((1 + prior) / 3), logit((1 + prior) / 3)],
                                     [logit(prior), logit((0 + prior) / 2)]])  # fmt: skip
    left_out = rates.logits(ids[:1], leave_out=y[:1])  # e1::p1 without itself: e1 0 of 1, p1 0 of 1
    np.testing.assert_allclose(left_out, [[logit(prior / 2), logit(prior / 2)]])
    fitted = fit_element_propensity(pair_dataset(list(ids), list(y)), None, PAIR_IO, C=1.0, prior_strength=1.0)
    test = pair_dataset(["e1::p1", "e2::p2"], [1, 0])
    assert fitted.score(test).shape == (2,) and fitted.n_params == 3
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).score(test), fitted.score(test))


def test_element_propensity_scores_the_random_split_leak_of_epi_synthetic() -> None:
    """Under a random split most test positives share an element with a training positive, so element identity
    alone ranks them; under the chromosome split no test element is seen in training, and it is at chance."""
    auroc = {}
    for split in ("random", "chromosome"):
        run_id = train_run(RunRequest("epi.synthetic", "element_propensity", {"data": {"split": split}}, 0,
                                      experiment="leak"))  # fmt: skip
        auroc[split] = store.client().get_run(run_id).data.metrics["test_auroc"]
    assert auroc["random"] > 0.75 and auroc["chromosome"] == pytest.approx(0.5), auroc


@pytest.mark.parametrize(("model", "task", "reason"), [
    ("epi_distance", "enhancers.synthetic", "needs enhancer–promoter pairs"),
    ("element_propensity", "chromatin.synthetic", "needs enhancer–promoter pairs"),
    ("gc_length", "chromatin.synthetic", "binary tasks only"),
    ("length_only", "chromatin.synthetic", "binary tasks only"),
])  # fmt: skip
def test_a_shortcut_refuses_a_task_it_cannot_score_before_any_data_loads(model: str, task: str, reason: str) -> None:
    plugin = get_model(model)
    io = make_task(task).io  # building a task loads no data
    with pytest.raises(IncompatibleError, match=f"cannot run on task {task}: .*{reason}"):
        check_compatible(plugin, io, plugin.defaults, task)
    check_compatible(get_model(model), make_task("epi.synthetic").io, plugin.defaults, "epi.synthetic")
