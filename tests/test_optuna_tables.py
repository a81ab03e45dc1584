"""A study's Optuna figures: drawn without Optuna's notice that its matplotlib plots are experimental."""

from __future__ import annotations

import warnings

import optuna

from harness.tuning.optuna_tables import close_figures, study_figures


def test_study_figures_without_the_experimental_notice() -> None:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = study_figures(study)
    close_figures(figures)
    assert set(figures) == {"plots/optuna_history.png", "plots/optuna_importances.png"}
    assert [str(w.message) for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)] == []
