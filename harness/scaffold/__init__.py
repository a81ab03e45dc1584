"""`regbench new model|task NAME --out DIR`: a pip-installable plugin package from the templates in `templates/`.

The package holds `pyproject.toml` (the entry point in `regbench.models` / `regbench.tasks`), one module with a
small working plugin that imports only `harness.api`, and `tests/test_<module>.py`, which runs
`regbench plugin check NAME`. Templates are `string.Template` files (`${name}`, `${module}`, `${dist}`).
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def module_name(name: str) -> str:
    """A plugin name as a Python module name: `my.motifs` → `my_motifs`."""
    module = re.sub(r"\W", "_", name).lower()
    return f"{module}_plugin" if keyword.iskeyword(module) else module


def write(kind: str, name: str, out: Path) -> list[Path]:
    """Write the `kind` ("model" | "task") package for plugin `name` into `out` (new or empty); the files written."""
    if not NAME.fullmatch(name):
        raise ValueError(f"plugin name {name!r}: use letters, digits, '_', '.' or '-', starting with a letter")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose another --out")
    module = module_name(name)
    values = {"name": name, "module": module, "dist": f"regbench-{module.replace('_', '-')}"}
    files = {
        out / "pyproject.toml": TEMPLATES / kind / "pyproject.toml.tmpl",
        out / f"{module}.py": TEMPLATES / kind / "module.py.tmpl",
        out / "tests" / f"test_{module}.py": TEMPLATES / kind / "test_module.py.tmpl",
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template.read_text()).substitute(values))
    return list(files)
