"""Short, distinct MLflow run names that fit a UI table cell; the full task and model are always in the tags.

`kmer_attention · enh.synth` (a cell), `… · s1` (its refit with seed 1), `… · t3` (its trial 3), and the same with
the split in brackets when a study crosses splits (`speid · epi.gm12878[random]`).
"""

from __future__ import annotations

FAMILIES = {"enhancers": "enh", "promoters": "prom", "chromatin": "chrom", "epi": "epi"}
WORDS = {"synthetic": "synth", "targetfinder": "tf", "strength": "str"}


def short_task(task: str) -> str:
    """`enhancers.synthetic` → `enh.synth`, `enhancers.ienhancer2l_strength` → `enh.ienhancer2l_str`."""
    family, _, name = task.partition(".")
    words = "_".join(WORDS.get(w, w) for w in name.split("_"))
    return f"{FAMILIES.get(family, family)}.{words}" if name else FAMILIES.get(family, family)


def cell_name(task: str, model: str, split: str = "") -> str:
    """A benchmark cell or study: `model · task` (`task[split]` when the study crosses splits)."""
    where = f"{short_task(task)}[{split}]" if split else short_task(task)
    return f"{model} · {where}"


def refit_name(cell: str, seed: int) -> str:
    return f"{cell} · s{seed}"


def trial_name(cell: str, number: int) -> str:
    return f"{cell} · t{number}"


def train_name(task: str, model: str, seed: int) -> str:
    """A `regbench train` run: `model · task · sSEED`."""
    return f"{model} · {short_task(task)} · s{seed}"
