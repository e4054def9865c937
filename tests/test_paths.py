"""Relative run paths land in the workbook root, whichever folder the kernel or command starts in."""

from __future__ import annotations

from pathlib import Path

from vireid_lib.paths import resolve, workbook_root

ROOT = Path(__file__).resolve().parents[1]


def test_the_checkout_is_the_root_from_any_working_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VIREID_ROOT", raising=False)
    for folder in (ROOT / "notebooks", tmp_path):
        monkeypatch.chdir(folder)
        assert workbook_root() == ROOT
        assert resolve("results") == ROOT / "results"


def test_absolute_paths_are_kept_and_vireid_root_overrides(monkeypatch, tmp_path: Path) -> None:
    assert resolve(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("VIREID_ROOT", str(tmp_path))
    assert resolve("runs/a") == tmp_path.resolve() / "runs" / "a"
