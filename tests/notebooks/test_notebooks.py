"""Every notebook runs top to bottom through papermill on the synthetic data, small parameters."""

from __future__ import annotations

import json
from pathlib import Path

import subprocess
import sys

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Tiny and untrained-from-scratch: this checks that every step runs, not how well it learns.
SMOKE = dict(pretrained=False, epochs=2, height=64, width=32, batches_per_epoch=3, eval_trials=2, workers=0, num_ids=4)


def test_notebooks_are_committed_clean_with_a_parameters_cell() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert not any(c.outputs or c.execution_count for c in code), f"{path.name}: strip outputs before committing"
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path.name
        assert max(len(c.source.splitlines()) for c in code if "parameters" not in c.metadata.get("tags", [])) <= 15


def run_notebook(name: str, parameters: dict, tmp_path: Path) -> tuple[nbformat.NotebookNode, str]:
    """Run ``notebooks/<name>`` with papermill, exactly as a user does; returns it and its outputs as JSON text.

    A subprocess rather than in-process execution: under pytest's output capture the kernel's
    widget messages can stall.
    """
    output = tmp_path / "out.ipynb"
    command = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / name), str(output),
               "--cwd", str(ROOT), "--no-progress-bar", "--log-level", "ERROR"]
    for key, value in {**parameters, "out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")}.items():
        command += ["-p", key, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(output, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "Synthetic data." in text  # the banner: never mistaken for a reproduction
    assert "image/png" in text  # figures reach the notebook
    return executed, text


@pytest.mark.parametrize("dataset", ["sysu", "regdb"])
def test_ivreid_notebook_runs_on_synthetic_data(dataset: str, tmp_path: Path) -> None:
    # AGW's lr 0.1 assumes ImageNet weights; from scratch at this size it blows up, so smoke it at 0.01.
    parameters = {**SMOKE, "dataset": dataset, "method": "agw" if dataset == "regdb" else "ivreid",
                  "lr": 0.01 if dataset == "regdb" else None}
    run_notebook("ivreid_baseline.ipynb", parameters, tmp_path)
    (record_path,) = (tmp_path / "results").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["data_kind"] == "synthetic" and record["dataset"] == dataset
    protocols = {row["protocol"] for row in record["rows"]}
    assert protocols == ({"all-search, single-shot", "all-search, multi-shot (10)", "indoor-search, single-shot",
                          "indoor-search, multi-shot (10)"} if dataset == "sysu" else {"standard"})
    assert record["checkpoint"]["sha256"] and record["config"]["train"]["epochs"] == 2


def test_cst_notebook_runs_on_synthetic_vcm_with_both_models_and_attention_maps(tmp_path: Path) -> None:
    parameters = dict(pretrained=False, arch="resnet18", epochs=2, seq_len=4, height=64, width=32, tube="(2, 2, 1)",
                      dim=32, heads=4, batches_per_epoch=2, num_ids=4, workers=0, baseline_lr=0.01)
    executed, text = run_notebook("cst_vcm.ipynb", parameters, tmp_path)
    (attention_cell,) = [c for c in executed.cells if "attention_examples()" in c.source]
    pictures = [o for o in attention_cell.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 6  # rollout, message attention and frame maps, for a visible and an infrared clip
    assert "MITML" in text and "IBAN (as reported by CST)" in text and "this run (synthetic)" in text
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results").glob("*.json"))]
    assert sorted(r["method"] for r in records) == ["baseline", "cst"]
    for record in records:
        assert record["dataset"] == "vcm" and record["data_kind"] == "synthetic"
        assert {row["direction"] for row in record["rows"]} == {"ir2rgb", "rgb2ir"}
        assert record["config"]["params"]["seq_len"] == 4


def test_command_line_entry_trains_under_torchrun_with_two_cpu_processes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "vireid_lib.experiments", "--method", "ivreid", "--dataset", "regdb", "--no-pretrained",
               "--epochs", "1", "--height", "64", "--width", "32", "--batches-per-epoch", "2", "--num-ids", "4",
               "--workers", "0", "--device", "cpu", "--out-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "results").glob("regdb_ivreid_synthetic_*.json"))) == 1  # rank 0 alone wrote it
    assert (tmp_path / "runs/ivreid_regdb/trial1/last.pt").is_file()
