"""Rendering report sections as Markdown (figures written beside it) and as one self-contained HTML page
(figures embedded as base64 PNG, no external resources).

The HTML page is 1100 px wide: tables put a metric's 95% CI under its value (`value [low, high]` cells become two
lines), `code` in notes is set as code, details (run ids, digests, failure notes) are collapsed `<details>`, and
figures are shown at the size they were drawn (`DPI` pixels per inch shown as 96 CSS px per inch).
"""

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

DPI = 150
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td { white-space: nowrap; }
span.ci { color: #666; font-size: 0.85em; }
table.header td { white-space: normal; }
table.header td:first-child { font-weight: 600; white-space: nowrap; }
img { max-width: 100%; height: auto; margin: 0.5em 0; }
p.note { color: #555; font-size: 0.9em; max-width: 60em; }
details { margin: 0.3em 0 1.2em; }
summary { cursor: pointer; color: #444; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 0.85em; overflow-x: auto; }
"""
_CI = re.compile(r"^(\S+) (\[[^\]]+\](?: ± .+)?|± .+)$")  # "0.871 [0.842, 0.897]", "… ± 0.012 (n=3)", "0.871 ± …"
_CODE = re.compile(r"`([^`]+)`")


@dataclass
class Section:
    """A titled part of the report: a note, tables, figures as `(name, PNG bytes)`, and collapsed details as
    `(summary, table)`."""

    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)
    details: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


@dataclass
class Header:
    """What the report is of: `(label, value)` rows (study, settings, date, git sha, machine) and the study file."""

    rows: list[tuple[str, str]]
    study_text: str = ""
    study_name: str = ""


def png(fig: Figure) -> bytes:
    """A figure as PNG bytes (`DPI`); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plots.close(fig)
    return buffer.getvalue()


def display_width(data: bytes) -> int:
    """The CSS width (px) that shows a PNG of `png` at the size it was drawn."""
    return round(int.from_bytes(data[16:20], "big") * 96 / DPI)


def slug(text: str) -> str:
    """A file-name-safe version of `text`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


def render_markdown(title: str, sections: list[Section], out_dir: Path, header: Header | None = None) -> str:
    """The report as Markdown; figures are written to `out_dir/figures/<name>.png` and linked relatively."""
    (out_dir / "figures").mkdir(exist_ok=True)
    lines = [f"# {title}", ""]
    if header is not None:
        lines += [to_markdown(pd.DataFrame(header.rows, columns=["", ""]))]
        if header.study_text:
            lines += [f"<details><summary>study file {header.study_name}</summary>", "", "```yaml",
                      header.study_text.rstrip(), "```", "", "</details>", ""]  # fmt: skip
    for section in sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        lines += [to_markdown(t) for t in section.tables]
        for summary, table in section.details:
            lines += [f"<details><summary>{summary}</summary>", "", to_markdown(table), "</details>", ""]
        for name, data in section.figures:
            path = Path("figures") / f"{slug(name)}.png"
            (out_dir / path).write_bytes(data)
            lines += [f"![{name}]({path.as_posix()})", ""]
    return "\n".join(lines)


def _text(text: str) -> str:
    """Escaped text with `code` spans as <code>."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


def _cell(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = format(value, ".4g") if isinstance(value, float) else str(value)
    found = _CI.match(text)
    if found:
        return f"{html.escape(found[1])}<br><span class='ci'>{html.escape(found[2])}</span>"
    return _text(text)


def html_table(table: pd.DataFrame, css: str = "") -> str:
    """A DataFrame as an HTML table (escaped; CI cells on two lines; `code` as code); no header row for the
    report's header (`css="header"`)."""
    head = "" if css == "header" else "".join(f"<th>{_text(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))  # fmt: skip
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table{f' class={css!r}' if css else ''}>{thead}<tbody>{body}</tbody></table>"


def render_html(title: str, sections: list[Section], header: Header | None = None) -> str:
    """The report as one HTML page with the figures inline (data URIs)."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if header is not None:
        parts.append(html_table(pd.DataFrame(header.rows, columns=["", ""]), "header"))
        if header.study_text:
            parts.append(f"<details><summary>study file {html.escape(header.study_name)}</summary>"
                         f"<pre>{html.escape(header.study_text)}</pre></details>")  # fmt: skip
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p class='note'>{_text(section.text)}</p>")
        parts += [html_table(t) for t in section.tables]
        parts += [f"<details><summary>{_text(summary)}</summary>{html_table(table)}</details>"
                  for summary, table in section.details]  # fmt: skip
        for name, data in section.figures:
            encoded = base64.b64encode(data).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(name)}' width='{display_width(data)}' "
                f"src='data:image/png;base64,{encoded}'><figcaption>{html.escape(name)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
