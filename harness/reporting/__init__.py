"""Figures, per-label tables and the experiment report (Markdown + self-contained HTML)."""
