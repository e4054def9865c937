"""``python -m vireid_lib.data splits|summary`` on the synthetic twins.

Each expected split is rebuilt here straight from the files on disk, following the
PROTOCOLS.md text, without calling the readers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
from pathlib import Path

import pytest

from tests import helpers
from vireid_lib.data.__main__ import main


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def items(entries: list[tuple[list[str], int, int]]) -> list[dict]:
    return [{"paths": paths, "pid": pid, "camid": camid} for paths, pid, camid in entries]


def sysu_expected(root: Path, mode: str, trial: int, shot: int) -> dict:
    test_ids = sorted(int(t) for t in (root / "exp/test_id.txt").read_text().splitlines()[0].split(","))
    query = []
    for pid in test_ids:
        for cam in (3, 6):
            folder = root / f"cam{cam}/{pid:04d}"
            if folder.is_dir():
                query += [([f"cam{cam}/{pid:04d}/{f}"], pid, cam) for f in sorted(os.listdir(folder))]
    random.seed(trial)
    gallery = []
    for pid in test_ids:
        for cam in ((1, 2, 4, 5) if mode == "all" else (1, 2)):
            folder = root / f"cam{cam}/{pid:04d}"
            if folder.is_dir():
                files = sorted(os.listdir(folder))
                picked = [random.choice(files)] if shot == 1 else (random.sample(files, shot) if len(files) >= shot else files)
                gallery += [([f"cam{cam}/{pid:04d}/{f}"], pid, cam) for f in picked]
    return {"query": items(query), "gallery": items(gallery)}


@pytest.mark.parametrize("mode,trial,shot", [("all", 0, 1), ("all", 9, 1), ("indoor", 4, 1), ("all", 2, 10), ("indoor", 5, 10)])
def test_sysu_splits(synthetic_sysu: Path, capsys: pytest.CaptureFixture, mode: str, trial: int, shot: int) -> None:
    with pytest.warns(UserWarning) if mode == "indoor" or shot == 10 else contextlib.nullcontext():
        printed = run_cli(capsys, "splits", "sysu", str(synthetic_sysu), "--mode", mode, "--trial", str(trial), "--shot", str(shot))
    assert printed == sysu_expected(synthetic_sysu, mode, trial, shot)


def test_regdb_splits(synthetic_regdb: Path, capsys: pytest.CaptureFixture) -> None:
    def listed(name: str) -> list[tuple[list[str], int, int]]:
        camid = 1 if "visible" in name else 2
        return [([p], int(label), camid) for p, label in
                (line.split() for line in (synthetic_regdb / "idx" / name).read_text().splitlines())]

    printed = run_cli(capsys, "splits", "regdb", str(synthetic_regdb), "--trial", "3", "--direction", "t2v")
    assert printed == {"query": items(listed("test_thermal_3.txt")), "gallery": items(listed("test_visible_3.txt"))}
    printed = run_cli(capsys, "splits", "regdb", str(synthetic_regdb))
    assert printed["query"] == items(listed("test_visible_1.txt"))


@pytest.mark.parametrize("direction,seq_len", [("ir2rgb", 6), ("rgb2ir", 6), ("ir2rgb", 12)])
def test_vcm_splits(synthetic_vcm: Path, capsys: pytest.CaptureFixture, direction: str, seq_len: int) -> None:
    info = synthetic_vcm / "info"
    names = (info / "test_name.txt").read_text().split()
    rows = [list(map(int, line.split())) for line in (info / "track_test_info.txt").read_text().splitlines()]
    query_rows = [int(t) - 1 for t in (info / "query_IDX.txt").read_text().split("\n")[0].split()]
    other_rows = [r for r in range(len(rows)) if r not in query_rows]
    if direction == "rgb2ir":
        query_rows, other_rows = other_rows, query_rows

    def entry(row: int) -> tuple[list[str], int, int] | None:
        _, start, end, pid, cam = rows[row]
        n = end - start + 1
        if n < 12:
            return None
        k = math.ceil(n / seq_len)
        picks = [min(s * k, n - 1) for s in range(seq_len)]
        paths = []
        for i in picks:
            name = names[start - 1 + i]
            modality = "ir" if name[5] == "1" else "rgb"
            paths.append(f"{name[:4]}/{modality}/{name[name.index('D'):name.index('T')]}/{name[name.index('F') + 1:]}")
        return paths, pid, cam

    expected = {role: items([e for e in map(entry, chosen) if e]) for role, chosen in (("query", query_rows), ("gallery", other_rows))}
    printed = run_cli(capsys, "splits", "vcm", str(synthetic_vcm), "--direction", direction, "--seq-len", str(seq_len))
    assert printed == expected
    assert all(len(item["paths"]) == seq_len for item in printed["query"])


def test_splits_as_a_module_command_and_its_errors(synthetic_vcm: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "vireid_lib.data", "splits", "vcm", str(synthetic_vcm)]
    done = helpers.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and set(json.loads(done.stdout)) == {"query", "gallery"}
    missing = helpers.run([*command[:-1], str(tmp_path / "absent")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "error: HITSZ-VCM root" in missing.stderr and "absent" in missing.stderr
    wrong = helpers.run([*command, "--direction", "v2t"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "does not apply to vcm" in wrong.stderr


def test_summary_table(synthetic_vcm: Path, synthetic_sysu: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "vcm", str(synthetic_vcm)]) == 0
    table = capsys.readouterr().out
    assert "ir2rgb" in table and "rgb2ir" in table and "min_len" in table
    assert main(["summary", "sysu", str(synthetic_sysu)]) == 0
    assert "indoor-search, trial 0" in capsys.readouterr().out

