"""regbench's public plugin API: everything an outside model or task imports, and nothing else.

A plugin is a Python module that registers at import, exactly as the built-in ones in `models/` and `tasks/` do:

    from harness.api import ModelPlugin, Settings, Setting, register_model
    register_model(ModelPlugin(name="my_cnn", description="...", native_inputs="seq", build=build,
                               defaults=Settings({"width": Setting(64, ge=1)}), search_space=space))

    from harness.api import IOSpec, SeqDataset, SplitTask, binary_metrics, register_task
    register_task("my.task", factory, "what the task is")  # factory(**data_options) -> Task

regbench finds plugins through the entry-point groups `regbench.models` / `regbench.tasks` of installed packages,
`--plugins PATH`, `$REGBENCH_PLUGINS` and a study file's `plugins:` (docs/plugins.md). The names below are kept
stable: a plugin that imports only from `harness.api` keeps working across regbench versions.
"""

from harness.config import ConfigError, Setting, Settings
from harness.data.datasets import SeqDataset, Seqs
from harness.data.split_task import SplitTask
from harness.evaluation.metrics import binary_metrics
from harness.plugins import register_model, register_task
from harness.spec import Batch, Dataset, Encoder, IOSpec, ModelPlugin, Predictor, Splits, Task

__all__ = [
    "Batch",
    "ConfigError",
    "Dataset",
    "Encoder",
    "IOSpec",
    "ModelPlugin",
    "Predictor",
    "SeqDataset",
    "Seqs",
    "Setting",
    "Settings",
    "SplitTask",
    "Splits",
    "Task",
    "binary_metrics",
    "register_model",
    "register_task",
]
