"""Every notebook runs top to bottom through papermill on the synthetic data, small parameters."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
# Tiny and untrained-from-scratch: this checks that every step runs, not how well it learns.
SMOKE = dict(pretrained=False, arch="resnet18", epochs=2, height=64, width=32, batches_per_epoch=3, eval_trials=2,
             workers=0, num_ids=4)


def _tools():
    spec = importlib.util.spec_from_file_location("notebook_tools", ROOT / "tools" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_paired_with_their_scripts_clean_and_short() -> None:
    tools = _tools()
    assert tools.problems() == []
    assert {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")} == {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path.name
        assert max(len(c.source.splitlines()) for c in code if "parameters" not in c.metadata.get("tags", [])) <= 15


def test_the_pair_check_catches_an_unsynced_edit_and_outputs(tmp_path: Path) -> None:
    tools = _tools()
    for path in (ROOT / "notebooks").glob("ivreid_baseline.*"):
        shutil.copy(path, tmp_path / path.name)
    assert tools.problems(tmp_path) == []
    script = tmp_path / "ivreid_baseline.py"
    script.write_text(script.read_text().replace("run.summary()", "run.summary().head()"))
    assert any("differ from cell" in p for p in tools.problems(tmp_path))
    tools.sync(tmp_path)  # the edited script is the newer half: the notebook follows it
    assert tools.problems(tmp_path) == []
    assert "run.summary().head()" in (tmp_path / "ivreid_baseline.ipynb").read_text()
    notebook = nbformat.read(tmp_path / "ivreid_baseline.ipynb", as_version=4)
    notebook.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello")]
    nbformat.write(notebook, tmp_path / "ivreid_baseline.ipynb")
    assert any("carries outputs" in p for p in tools.problems(tmp_path))


def run_notebook(name: str, parameters: dict, out: Path, cwd: Path = ROOT) -> tuple[nbformat.NotebookNode, str]:
    """Run ``notebooks/<name>`` with papermill, exactly as a user does; returns it and its outputs as JSON text.

    A subprocess rather than in-process execution: under pytest's output capture the kernel's
    widget messages can stall. ``out_dir`` and ``results_dir`` default to folders under ``out``.
    """
    output = out / "out.ipynb"
    command = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / name), str(output),
               "--cwd", str(cwd), "--no-progress-bar", "--log-level", "ERROR"]
    for key, value in {"out_dir": str(out / "runs"), "results_dir": str(out / "results"), **parameters}.items():
        command += ["-p", key, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(output, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "Synthetic data." in text  # the banner: never mistaken for a reproduction
    assert "image/png" in text  # figures reach the notebook
    return executed, text


def _record(folder: Path) -> dict:
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text())


@pytest.fixture
def in_root_runs():
    """A folder under the workbook root's (git-ignored) runs/, removed afterwards: for relative paths."""
    relative = Path("runs") / f"pytest-{uuid.uuid4().hex[:8]}"
    yield relative
    shutil.rmtree(ROOT / relative, ignore_errors=True)


def test_ivreid_notebook_from_the_notebooks_folder_writes_where_the_readme_reads(in_root_runs: Path, tmp_path: Path) -> None:
    # As JupyterLab or `papermill --cwd notebooks` runs it: relative paths must land in the root, not in notebooks/.
    parameters = {**SMOKE, "dataset": "sysu", "method": "ivreid", "out_dir": str(in_root_runs / "runs"),
                  "results_dir": str(in_root_runs / "results")}
    executed, text = run_notebook("ivreid_baseline.ipynb", parameters, tmp_path, cwd=ROOT / "notebooks")
    assert not (ROOT / "notebooks" / in_root_runs).exists()
    record = _record(ROOT / in_root_runs / "results")
    assert record["data_kind"] == "synthetic" and record["dataset"] == "sysu"
    assert {row["protocol"] for row in record["rows"]} == {"all-search, single-shot", "all-search, multi-shot (10)",
                                                          "indoor-search, single-shot", "indoor-search, multi-shot (10)"}
    assert record["checkpoint"]["sha256"] and record["config"]["train"]["epochs"] == 2
    assert str(ROOT / in_root_runs / "results") in text  # the notebook says where it wrote
    assert (ROOT / in_root_runs / "runs" / "ivreid_sysu" / "all" / "figures" / "cmc.png").is_file()
    # The saved notebook keeps each epoch's finished progress line, as text a viewer without widgets shows.
    (training,) = [c for c in executed.cells if "run.train()" in c.source]
    stream = "".join(o.get("text", "") for o in training.outputs if o.get("output_type") == "stream")
    assert "epoch 2/2: 100%" in stream and "3/3" in stream
    # Synthetic data: the paper's numbers for orientation, but no difference column.
    assert "R1 paper" in text and "R1 Δ" not in text and "No difference is computed" in text


def test_agw_notebook_on_regdb(tmp_path: Path) -> None:
    # AGW's lr 0.1 assumes ImageNet weights; from scratch at this size it blows up, so smoke it at 0.01.
    run_notebook("ivreid_baseline.ipynb", {**SMOKE, "dataset": "regdb", "method": "agw", "lr": 0.01}, tmp_path)
    record = _record(tmp_path / "results")
    assert record["dataset"] == "regdb" and {row["protocol"] for row in record["rows"]} == {"standard"}


def test_an_agw_checkpoint_in_the_authors_layout_evaluates_through_the_notebook(tmp_path: Path) -> None:
    from tests.models.test_official_checkpoints import EmbedNetOfficial, randomise
    from vireid_lib.experiments.image import prepare

    classes = prepare(method="agw", dataset="regdb", pretrained=False, device="cpu", workers=0, out_dir=str(tmp_path),
                      progress=False).params["num_classes"]
    official = EmbedNetOfficial(classes)
    randomise(official, seed=3)
    # The parts the official forward never runs are left out of this file to keep it small; they are optional.
    used = {k: v for k, v in official.state_dict().items()
            if not k.startswith(("visible_module.visible.layer", "thermal_module.thermal.layer", "visible_module.visible.fc",
                                 "thermal_module.thermal.fc", "base_resnet.base.fc", "base_resnet.base.conv1",
                                 "base_resnet.base.bn1"))}
    torch.save({"net": used, "mAP": 0.5, "epoch": 60}, tmp_path / "regdb_agw_trial_1_best.t")
    parameters = {**SMOKE, "dataset": "regdb", "method": "agw", "arch": "resnet50",  # the official network's
                  "checkpoint": str(tmp_path / "regdb_agw_trial_1_best.t")}
    executed, text = run_notebook("ivreid_baseline.ipynb", parameters, tmp_path)
    assert "evaluating AGW, mangye16/Cross-Modal-Re-ID-baseline (embed_net)" in text and "epoch 61" in text
    record = _record(tmp_path / "results")
    assert record["weights"]["kind"].startswith("AGW") and record["weights"]["stored_metrics"]["mAP"] == 0.5
    assert not (tmp_path / "runs" / "agw_regdb").exists() or not any((tmp_path / "runs" / "agw_regdb").rglob("last.pt"))


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
