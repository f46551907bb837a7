"""``results/summary/README.md``: one reproduction table for the four papers.

Every experiment summary (``history_surrogates*.md``, ``field_surrogates.md``) is a Markdown table
with the columns experiment, our metric, paper value, data size, epochs, hardware. This module
collects their rows, files each under the paper it reproduces and links the source summary, so a
reader sees at a glance what has been reproduced, at what size, and where the details are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

#: (key, title) of the four papers, in the order of the mission statement
PAPERS = (
    ("gcnn", "Multi-level GCNNs on reduced grain graphs (paper 'gcnn')"),
    ("pcanet", "PCA-Net surrogates of deformation-to-stress histories (paper 'pcanet')"),
    ("rno", "Recurrent neural operators with learned internal variables (paper 'rno')"),
    ("rln", "Recurrent localization networks (paper 'rln')"),
)

#: how a row is filed: the first pattern that matches its experiment cell decides
_RULES = (
    ("rln", re.compile(r"\b(RLN|FLN|MASE|elastic_ls)\b")),
    ("gcnn", re.compile(r"(GCNN|\bCNN\b|heat2d|cp_grid|viscoelastic3d)")),
    ("pcanet", re.compile(r"(PCA-?Net|pcanet)", re.IGNORECASE)),
    ("rno", re.compile(r".")),
)

HEADER = ("experiment", "our metric", "paper value", "data size", "epochs", "hardware")


def paper_of(experiment: str) -> str:
    """The paper key a summary row belongs to (see ``_RULES``)."""
    for key, pattern in _RULES:
        if pattern.search(experiment):
            return key
    raise AssertionError("the last rule matches everything")


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the summary table(s) in ``markdown`` (header and separator dropped)."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [c.strip() for c in line[1:-1].split("|")]
        if cells[0].lower() == "experiment" or set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != len(HEADER):
            raise ValueError(f"summary row with {len(cells)} cells, expected {len(HEADER)} ({', '.join(HEADER)}): "
                             f"{line[:120]}")
        rows.append(cells)
    return rows


def write_index(path, summaries: Sequence[Path | str]) -> str:
    """Write the index to ``path`` (rows of every existing summary, grouped by paper) and return it.

    Missing summary files are listed as not yet produced, never silently dropped.
    """
    path = Path(path)
    grouped: dict[str, list[str]] = {key: [] for key, _ in PAPERS}
    missing = []
    for s in map(Path, summaries):
        if not s.exists():
            missing.append(s.name)
            continue
        try:
            rel = s.resolve().relative_to(path.parent.resolve())
        except ValueError:
            rel = s
        try:
            rows = table_rows(s.read_text())
        except ValueError as exc:
            raise ValueError(f"{s}: {exc}") from None
        for cells in rows:
            grouped[paper_of(cells[0])].append("| " + " | ".join(cells + [f"[{s.name}]({rel.as_posix()})"]) + " |")
    lines = ["# Reproduction table: homlearn against the four papers", "",
             "Each row is one experiment of one paper: our metric next to the paper's, with the data size, epochs "
             "and hardware of our run. Details, figures and the exact commands are in the linked summaries and "
             "in the Snakemake report (`snakemake --report results/report.html`).", ""]
    for key, title in PAPERS:
        lines += [f"## {title}", ""]
        if grouped[key]:
            lines += ["| " + " | ".join(HEADER + ("summary",)) + " |", "|" + " --- |" * (len(HEADER) + 1)]
            lines += grouped[key]
        else:
            lines.append("No experiment of this paper has been run into a summary yet.")
        lines.append("")
    if missing:
        lines += ["## Not produced yet", "", *(f"- `{m}`" for m in missing), ""]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
