"""A notebook's prose states no result it does not compute: numbers that a run measures (R1, mAP, mINP, points,
percentages of a score) belong in its tables, which every run recomputes, never in its markdown, where they go stale
(ivreid_baseline once said bilinear resizing scored 1.3 R1 below Lanczos while its own table showed +2.63)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MEASURED = [re.compile(p, re.I) for p in (
    r"\b(R1|R10|R20|rank-?1|mAP|mINP)\b[^.\n|]{0,30}?\d+\.\d+",  # "R1 of 46.3", "mAP 0.7 below"
    r"\d+(\.\d+)? points? of (R1|rank|mAP|mINP)",
    r"scored \d", r"[+-]\d+\.\d+ (R1|mAP)")]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_markdown_states_no_measured_number(path: Path) -> None:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            found = [m.group(0) for pattern in MEASURED for m in pattern.finditer(cell.source)]
            assert not found, f"{path.name} states measured numbers in prose: {found}; show them in a table instead"


def test_the_check_catches_the_old_sentence() -> None:
    sentence = "bilinear scored 1.3 points of R1 and 0.7 of mAP below the official Lanczos"
    assert any(pattern.search(sentence) for pattern in MEASURED)
