"""How well a model's variant effects Δ (alt − ref) match ground truth, each metric with a seeded bootstrap 95% CI.

- With labels (1 causal / significant, 0 control): `variants_auroc` and `variants_auprc` of |Δ| (DART-Eval, BEND).
- With measured effects: `variants_pearson` and `variants_spearman` of Δ against the effect, and
  `variants_sign_agreement`: the fraction of variants with |effect| > `min_effect` whose Δ has the effect's sign.
"""

from __future__ import annotations

import numpy as np

from harness.evaluation.bootstrap import bootstrap_binary_samples, percentile_ci, resample_blocks
from harness.evaluation.metrics import binary_metrics
from harness.evaluation.regression import bootstrap_regression_samples, regression_metrics

Metric = tuple[float, float, float]  # value, CI low, CI high


def variant_metrics(
    abs_delta: np.ndarray,
    delta: np.ndarray,
    labels: np.ndarray | None,
    effects: np.ndarray | None,
    min_effect: float = 0.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Metric]:
    """`{name: (value, low, high)}` of the metrics the given columns allow (`(V,)` arrays)."""
    out: dict[str, Metric] = {}
    if labels is not None:
        if np.unique(labels).size < 2:
            raise ValueError("the label column holds one class only: AUROC of |Δ| needs causal (1) and control (0)")
        point = binary_metrics(labels, abs_delta)
        samples = bootstrap_binary_samples(labels, abs_delta, n_boot=n_boot, seed=seed)
        for name in ("auroc", "auprc"):
            out[f"variants_{name}"] = (point[name], *percentile_ci(samples[name]))
    if effects is not None:
        point = regression_metrics(effects, delta)
        samples = bootstrap_regression_samples(effects, delta, n_boot, seed)
        for name in ("pearson", "spearman"):
            out[f"variants_{name}"] = (point[name], *percentile_ci(samples[name]))
        strong = np.abs(effects) > min_effect
        if strong.any():
            agree = (np.sign(delta[strong]) == np.sign(effects[strong])).astype(np.float64)
            boot = np.concatenate([agree[idx].mean(1) for idx in resample_blocks(agree.size, n_boot, seed)])
            out["variants_sign_agreement"] = (float(agree.mean()), *percentile_ci(boot))
    return out
