"""A trained torch classifier as a `harness.spec.Predictor`, and the batch-to-tensor conversion it shares with
the training loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.spec import Dataset
from harness.training.losses import Link, apply_link
from harness.training.modeling import SequenceClassifier, count_parameters
from harness.training.precision import amp_dtype, autocast


def to_tensors(arrays: tuple[np.ndarray, ...], device: torch.device) -> list[torch.Tensor]:
    """A `Batch.inputs` tuple as tensors on `device`: uint8 base codes become int64, the rest keep their dtype."""
    out = []
    for a in arrays:
        t = torch.from_numpy(np.ascontiguousarray(a))
        out.append(t.long().to(device) if a.dtype == np.uint8 else t.to(device))
    return out


@dataclass
class TorchPredictor:
    """A trained model plus what is needed to score with it; `link` turns outputs into scores
    (`harness.training.losses`: sigmoid probabilities, or regression predictions)."""

    model: SequenceClassifier
    batch_size: int = 256
    rc_tta: bool = False
    device: str = "cpu"
    amp: str = "auto"  # `train.amp` of the run: scoring and ISM run in the same precision as training
    link: Link = "sigmoid"

    @property
    def n_params(self) -> int:
        return count_parameters(self.model)

    def logits(self, dataset: Dataset) -> np.ndarray:
        """Raw logits `(N, n_outputs)`, averaged over both strands when `rc_tta`."""
        device = torch.device(self.device)
        self.model.to(device).eval()
        out = []
        with torch.inference_mode(), autocast(device, amp_dtype(device, self.amp)):
            for start in range(0, len(dataset), self.batch_size):
                idx = np.arange(start, min(start + self.batch_size, len(dataset)))
                strands = (False, True) if self.rc_tta else (False,)
                logits = [self.model(*to_tensors(dataset.take(idx, rc).inputs, device)).float() for rc in strands]
                out.append(torch.stack(logits).mean(0).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.head.out_features), np.float32)

    def score(self, dataset: Dataset) -> np.ndarray:
        """`(N,)` or `(N, C)` probabilities (classifiers) or predictions (regression)."""
        scores = apply_link(self.logits(dataset), self.link)
        return scores[:, 0] if scores.shape[1] == 1 else scores
