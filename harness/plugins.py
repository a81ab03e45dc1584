"""The task and model registries: the built-in `tasks` and `models` packages, then outside plugins.

Tasks are registered as factories `factory(**data_options) -> Task` (options come from `--set data.*`); models as
`ModelPlugin`s. Outside plugins (installed entry points, `--plugins PATH`, `$REGBENCH_PLUGINS`, a study file's
`plugins:`) register through the same two functions; each entry records its origin (`harness.plugin_sources`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.plugin_sources import (
    BUILT_IN,
    PluginError,
    Source,
    entry_point_sources,
    env_paths,
    import_source,
    path_source,
    ship,
    shipped_sources,
)
from harness.plugin_validation import model_plugin_problems
from harness.registry import Registry, UnknownNameError
from harness.spec import ModelPlugin, Task

TaskFactory = Callable[..., Task]

TASKS: Registry[TaskFactory] = Registry("task")
MODELS: Registry[ModelPlugin] = Registry("model")
SOURCE_TAG = "regbench.plugin_source"


class _Loaded:
    """What this process has imported: built-ins once, then each outside source once (by label)."""

    builtins = False
    origin = BUILT_IN  # the origin registrations record while a source is being imported
    sources: dict[str, Source] = {}  # noqa: RUF012  (label → source, in load order)
    by_path: dict[str, Source] = {}  # noqa: RUF012  (the path as given → its source)
    broken: list[str] = []  # noqa: RUF012  (one line per installed entry point that failed)


def load_plugins(paths: Iterable[str] = ()) -> None:
    """Import the built-in plugins, installed entry points, `$REGBENCH_PLUGINS` and `paths` (each once).

    A broken path plugin raises PluginError (one line); a broken entry point is only recorded (`broken_plugins`)."""
    if not _Loaded.builtins:
        import models  # noqa: F401
        import tasks  # noqa: F401

        _Loaded.builtins = True
        for source in entry_point_sources():
            try:
                _load(source)
            except PluginError as err:
                _Loaded.broken.append(str(err))
        for source in shipped_sources():
            _load(source)
    for path in [*env_paths(), *(p for p in paths if p.strip())]:  # "": none (an empty MLproject parameter)
        if path not in _Loaded.by_path:
            _Loaded.by_path[path] = _load(path_source(path))


def _load(source: Source) -> Source:
    if source.label in _Loaded.sources:
        return source
    before = len(TASKS.names()) + len(MODELS.names())
    _Loaded.origin = source.origin
    try:
        import_source(source)
    except PluginError:
        TASKS.remove_origin(source.origin)
        MODELS.remove_origin(source.origin)
        raise
    finally:
        _Loaded.origin = BUILT_IN
    if len(TASKS.names()) + len(MODELS.names()) == before:
        raise PluginError(f"plugin {source.label}: registers no model or task; call register_model(ModelPlugin(...)) "
                          "or register_task(name, factory, description) from harness.api at import")  # fmt: skip
    _Loaded.sources[source.label] = source
    return source


def broken_plugins() -> list[str]:
    """One line per installed entry point that failed to load (after `load_plugins`)."""
    return list(_Loaded.broken)


def path_plugins() -> list[Source]:
    """The file and folder plugins loaded in this process (what a Ray job ships to its workers)."""
    return [s for s in _Loaded.sources.values() if s.path]


def ray_runtime_env(env_vars: dict[str, str]) -> dict[str, Any]:
    """A Ray job's runtime environment: `env_vars` plus the loaded path plugins, shipped to every worker."""
    shipped = ship(path_plugins())
    return {**shipped, "env_vars": {**env_vars, **shipped.get("env_vars", {})}}  # type: ignore[dict-item]


def _unknown(err: UnknownNameError) -> UnknownNameError:
    """The error with the broken entry points named: the name may be one of theirs."""
    if not _Loaded.broken:
        return err
    return UnknownNameError(f"{err} (not loaded, broken: {'; '.join(_Loaded.broken)})")


def make_task(name: str, data_options: dict[str, Any] | None = None) -> Task:
    load_plugins()
    try:
        factory = TASKS.get(name)
    except UnknownNameError as err:
        raise _unknown(err) from None
    return factory(**(data_options or {}))


def get_model(name: str) -> ModelPlugin:
    load_plugins()
    try:
        return MODELS.get(name)
    except UnknownNameError as err:
        raise _unknown(err) from None


def source_tags(task: str, model: str) -> dict[str, str]:
    """`{regbench.plugin_source: ORIGIN}` for a run whose task or model is a registered outside plugin (else {})."""
    load_plugins()
    entries = [reg.entry(name) for reg, name in ((TASKS, task), (MODELS, model)) if name in reg]
    origins = dict.fromkeys(e.origin for e in entries if e.outside)
    return {SOURCE_TAG: "; ".join(origins)} if origins else {}


def plugin_provenance(model: str) -> dict[str, str]:
    """What a logged model records of an outside model plugin: `plugin_source` (its origin) and, for a file or
    folder plugin, `plugin_path`; {} for a built-in."""
    entry = MODELS.entry(model)
    if not entry.outside:
        return {}
    paths = [s.path for s in path_plugins() if s.origin == entry.origin]
    return {"plugin_source": entry.origin, **({"plugin_path": paths[0]} if paths else {})}


def recorded_model(meta: Mapping[str, Any]) -> ModelPlugin:
    """The model plugin a logged model's metadata names, loading its file plugin from the recorded path when that
    file is unchanged; PluginError naming the missing plugin and its recorded source otherwise."""
    load_plugins()
    name, source = meta["model"], meta.get("plugin_source", "")
    recorded_path = meta.get("plugin_path", "")
    unchanged = (  # the file as it was when the model was logged; read only when the model is not registered
        name not in MODELS and recorded_path and Path(recorded_path).exists()
        and path_source(recorded_path).origin == source
    )  # fmt: skip
    if unchanged:
        load_plugins([recorded_path])
    if name not in MODELS and source:
        raise PluginError(
            f"model {name!r} comes from the outside plugin {source}, which is not available here "
            "(changed or missing): install it, or pass --plugins PATH or set REGBENCH_PLUGINS"
        )
    return get_model(name)


def shortcut_models() -> tuple[str, ...]:
    """Names of the registered shortcut baselines (`ModelPlugin.shortcut`)."""
    load_plugins()
    return tuple(e.name for e in MODELS if e.obj.shortcut)


def register_model(plugin: ModelPlugin) -> ModelPlugin:
    """Register a model (at import of its module); PluginError when its declaration breaks the contract."""
    problems = model_plugin_problems(plugin)
    if problems:
        raise PluginError(f"model {plugin.name!r}: {'; '.join(problems)}")
    try:
        return MODELS.register(plugin.name, plugin, plugin.description, _Loaded.origin)
    except ValueError as err:
        raise PluginError(str(err)) from None


def register_task(name: str, factory: TaskFactory, description: str) -> TaskFactory:
    """Register a task family: `factory(**data_options) -> Task`, options from `--set data.*`."""
    if not callable(factory):
        raise PluginError(f"task {name!r}: the factory must be callable, got {type(factory).__name__}")
    try:
        return TASKS.register(name, factory, description, _Loaded.origin)
    except ValueError as err:
        raise PluginError(str(err)) from None
