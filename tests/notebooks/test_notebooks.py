"""Every notebook runs top to bottom through papermill on the synthetic data, small parameters."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
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


def test_ivreid_notebook_on_regdb(tmp_path: Path) -> None:
    executed, text = run_notebook("ivreid_baseline.ipynb", {**SMOKE, "dataset": "regdb", "method": "ivreid"}, tmp_path)
    record = _record(tmp_path / "results")
    assert record["dataset"] == "regdb" and record["trial"] == 1 and {row["protocol"] for row in record["rows"]} == {"standard"}
    assert record["checkpoint"]["sha256"] and record["config"]["train"]["epochs"] == 2
    assert str(tmp_path / "results") in text  # the notebook says where it wrote
    assert "no ReLU after the stem" in text  # which network is in force, and why


def test_mmn_notebook_learns_on_synthetic_sysu(tmp_path: Path) -> None:
    """MMN through its notebook, long enough to learn: ResNet-18, 64 x 32, Adam, 10 x 20 steps."""
    parameters = dict(pretrained=False, arch="resnet18", optimizer="adam", lr=1e-3, backbone_lr_factor=1.0, height=64,
                      width=32, epochs=10, batches_per_epoch=20, workers=0, eval_trials=3, score_untrained=True)
    executed, text = run_notebook("mmn.ipynb", {**parameters, "dataset": "sysu"}, tmp_path)
    record = _record(tmp_path / "results")
    after = {r["protocol"]: r for r in record["rows"]}
    before = {r["protocol"]: r for r in record["untrained"]}
    chance = {r["protocol"]: r for r in record["chance"]}
    row = "all-search, single-shot"
    assert after[row]["R1"] >= before[row]["R1"] + 4.0 and after[row]["mAP"] >= before[row]["mAP"] + 6.0
    assert after[row]["R1"] >= 1.5 * chance[row]["R1"] and after[row]["mAP"] >= chance[row]["mAP"] + 6.0
    assert "frozen at its random initialisation" in text  # which DC head is in force
    for variant in ("original query x original gallery", "middle-modality query", "sum of the four"):
        assert variant in text
    (figure,) = [c for c in executed.cells if "middle_modality" in c.source and "paper_figure" in c.source]
    assert any("image/png" in o.get("data", {}) for o in figure.outputs)


def test_mmn_notebook_on_regdb_with_a_trained_dc_head(tmp_path: Path) -> None:
    executed, text = run_notebook("mmn.ipynb", {**SMOKE, "dataset": "regdb", "fix_dc_head": True}, tmp_path)
    record = _record(tmp_path / "results")
    assert record["method"] == "mmn" and record["config"]["params"]["recipe"]["fix_dc_head"] is True
    assert "trained (fix_dc_head=True)" in text


def _memory_figure_and_best(executed, record: dict) -> None:
    (figure,) = [c for c in executed.cells if "paper_figure(\"memories\")" in c.source]
    assert sum("image/png" in o.get("data", {}) for o in figure.outputs) == 1
    best = record["best_on_test"]
    assert best["epoch"] >= 1 and best["rows"] and best["selected_by"]["metric"] == "mAP"
    assert {r["protocol"] for r in best["rows"]} == {r["protocol"] for r in record["rows"]}


def test_mce_notebook_learns_on_synthetic_sysu(tmp_path: Path) -> None:
    """MCE through its notebook, long enough to learn: ResNet-18 from scratch, 64 x 32, Adam at a constant 1e-3,
    3 epochs of 45 steps of 8 ids x 2 images per modality (x 3 views), best-on-test tested after epochs 2 and 3.
    From scratch at this scale MCE learns more slowly than AGW (its memories start from an untrained network's
    nearly identical features), hence 8 identities a batch: more classes per step for the memories to separate."""
    parameters = dict(pretrained=False, arch="resnet18", lr=1e-3, schedule="constant", height=64, width=32, epochs=3,
                      batches_per_epoch=45, num_ids=8, num_per_modality=2, workers=0, eval_trials=3, eval_every=1,
                      eval_first=2, selection_trials=1, score_untrained=True)
    executed, text = run_notebook("mce.ipynb", {**parameters, "dataset": "sysu"}, tmp_path)
    record = _record(tmp_path / "results")
    after = {r["protocol"]: r for r in record["rows"]}
    before = {r["protocol"]: r for r in record["untrained"]}
    chance = {r["protocol"]: r for r in record["chance"]}
    row = "all-search, single-shot"
    print({k: (before[row][k], after[row][k], chance[row][k]) for k in ("R1", "mAP")})
    assert after[row]["R1"] >= before[row]["R1"] + 4.0 and after[row]["mAP"] >= before[row]["mAP"] + 5.0
    assert after[row]["R1"] >= 1.4 * chance[row]["R1"] and after[row]["mAP"] >= chance[row]["mAP"] + 4.0
    _memory_figure_and_best(executed, record)
    assert "multi-shot (10)" in text and "MCE's 10-shot galleries, last epoch" in text
    assert "best-on-test (epoch" in text and "last (epoch 3)" in text
    assert "the memory rebuilds took" in text and "epoch >= 40" in text  # the code-over-PAPERS.md note


def test_mce_notebook_on_regdb_with_its_memories_and_best_on_test(tmp_path: Path) -> None:
    parameters = {**SMOKE, "dataset": "regdb", "eval_every": 1, "eval_first": 1, "synthetic_ids": 16}
    executed, text = run_notebook("mce.ipynb", parameters, tmp_path)
    record = _record(tmp_path / "results")
    assert record["method"] == "mce" and record["config"]["params"]["recipe"]["num_per_modality"] == 5  # RegDB's
    assert {(r["protocol"], r["direction"]) for r in record["rows"]} == {("standard", "v2t"), ("standard", "t2v")}
    _memory_figure_and_best(executed, record)
    assert "best-on-test (epoch" in text and "RegDB: no 10-shot setting" in text
    assert "erasing_grey_pad" in text  # RegDB's own views, as the official RegDBData


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


def test_cst_notebook_runs_on_synthetic_vcm_with_cst_mitml_and_attention_maps(tmp_path: Path) -> None:
    parameters = dict(pretrained=False, arch="resnet18", epochs=2, seq_len=6, height=64, width=32, tube="(2, 2, 1)",
                      dim=32, heads=4, batches_per_epoch=2, num_ids=4, workers=0, mitml_lr=0.01,
                      mitml_confusion_epoch=1)
    executed, text = run_notebook("cst_vcm.ipynb", parameters, tmp_path)
    (attention_cell,) = [c for c in executed.cells if "attention_examples()" in c.source]
    pictures = [o for o in attention_cell.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 6  # rollout, message attention and frame maps, for a visible and an infrared clip
    assert "MITML" in text and "IBAN (as reported by CST)" in text and "this run (synthetic)" in text
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results").glob("*.json"))]
    assert sorted(r["method"] for r in records) == ["cst", "mitml"]
    assert "MITML at the paper's size (ResNet-50, 500 identities): 135.0M + 8.4M" in text
    (mitml,) = [r for r in records if r["method"] == "mitml"]
    assert mitml["config"]["params"]["confusion_epoch"] == 1 and mitml["best_on_test"]["selected_by"]
    (log,) = [p for p in (tmp_path / "runs").rglob("log.csv") if "modality_accuracy" in p.read_text()]
    rows = list(csv.DictReader(log.open()))
    assert float(rows[0]["confusion"]) == 0 and float(rows[1]["confusion"]) > 0  # on from (0-based) epoch 1
    for record in records:
        assert record["dataset"] == "vcm" and record["data_kind"] == "synthetic"
        assert {row["direction"] for row in record["rows"]} == {"ir2rgb", "rgb2ir"}
        assert record["config"]["params"]["seq_len"] == 6


def test_star_notebook_trains_star_and_its_baseline_and_draws_skeleton_maps(tmp_path: Path) -> None:
    parameters = dict(pretrained=False, arch="resnet18", epochs=2, seq_len=6, height=64, width=32, batches_per_epoch=2,
                      num_ids=4, workers=0, official_graph=True)
    executed, text = run_notebook("star_vcm.ipynb", parameters, tmp_path)
    assert "ground-truth** keypoints" in text and "keypoints from: ground truth" in text
    (maps,) = [c for c in executed.cells if "plot_skeleton_clip(" in c.source]
    (graph,) = [c for c in executed.cells if "plot_graph_attention(" in c.source]
    (pooling,) = [c for c in executed.cells if "plot_pooling_weights(" in c.source]
    for cell, count in ((maps, 2), (graph, 4), (pooling, 4)):  # a visible and an infrared clip each
        assert sum("image/png" in o.get("data", {}) for o in cell.outputs) == count, cell.source[:60]
    assert "STAR baseline" in text and "this run (synthetic)" in text and "58.56" in text
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results").glob("*.json"))]
    assert sorted(r["method"] for r in records) == ["star", "star_baseline"]
    (star,) = [r for r in records if r["method"] == "star"]
    assert star["config"]["params"]["recipe"]["official_graph"] is True
    assert star["config"]["params"]["skeleton_store"].endswith("skeletons_coco17.h5")
    for record in records:
        assert record["data_kind"] == "synthetic" and {row["direction"] for row in record["rows"]} == {"ir2rgb", "rgb2ir"}


def test_command_line_entry_trains_under_torchrun_with_two_cpu_processes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "vireid_lib.experiments", "--method", "ivreid", "--dataset", "regdb", "--no-pretrained",
               "--epochs", "1", "--height", "64", "--width", "32", "--batches-per-epoch", "2", "--num-ids", "4",
               "--workers", "0", "--device", "cpu", "--out-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "results").glob("regdb_ivreid_synthetic_*.json"))) == 1  # rank 0 alone wrote it
    assert (tmp_path / "runs/ivreid_regdb/trial1/last.pt").is_file()
