"""Rendering report sections as Markdown (figures written beside it) and as one self-contained HTML page
(figures embedded as base64 PNG, no external resources)."""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from harness.benchmark.leaderboard import to_markdown
from harness.reporting import plots

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; margin: 0.5em 0; }
p.note { color: #555; font-size: 0.9em; }
"""


@dataclass
class Section:
    """A titled part of the report: a note, tables, and figures as `(name, PNG bytes)`."""

    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)


def png(fig: Figure) -> bytes:
    """A figure as PNG bytes (120 dpi); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plots.close(fig)
    return buffer.getvalue()


def slug(text: str) -> str:
    """A file-name-safe version of `text`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


def render_markdown(title: str, sections: list[Section], out_dir: Path) -> str:
    """The report as Markdown; figures are written to `out_dir/figures/<name>.png` and linked relatively."""
    (out_dir / "figures").mkdir(exist_ok=True)
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        lines += [to_markdown(t) for t in section.tables]
        for name, data in section.figures:
            path = Path("figures") / f"{slug(name)}.png"
            (out_dir / path).write_bytes(data)
            lines += [f"![{name}]({path.as_posix()})", ""]
    return "\n".join(lines)


def render_html(title: str, sections: list[Section]) -> str:
    """The report as one HTML page with the figures inline (data URIs)."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p class='note'>{html.escape(section.text)}</p>")
        parts += [t.to_html(index=False, escape=True, na_rep="", border=0) for t in section.tables]
        for name, data in section.figures:
            encoded = base64.b64encode(data).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
                f"<figcaption>{html.escape(name)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
