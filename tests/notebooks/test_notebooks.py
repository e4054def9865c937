"""Every notebook runs top to bottom through papermill on the synthetic data: the smoke plan's runs (one session
fixture), and the few runs it cannot make (the authors' checkpoint, torchrun)."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from tests import helpers
from vireid_lib import reproduce
from vireid_lib.benchmarks import benchmark
from vireid_lib.experiments.common import SYNTHETIC_CAPTION
from vireid_lib.results.readme import reported_numbers

ROOT = Path(__file__).resolve().parents[2]
# Tiny, for the runs outside the smoke plan: this checks that every step runs, not how well it learns.
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
    done = helpers.run(command, capture_output=True, text=True, timeout=900)  # kills the kernel too
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(output, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "Synthetic data." in text  # the banner: never mistaken for a reproduction
    assert "image/png" in text  # figures reach the notebook
    return executed, text


def _record(folder: Path) -> dict:
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text())


# ------------------------------------------------------------------ the smoke plan: every paper's notebook, run once
# `python -m vireid_lib.reproduce --smoke` (the session fixture ``smoke_plan``) executes every planned run; the tests
# below read its executed notebooks and records. Each run's settings are the plan's: the shared tiny ones and what the
# paper's declaration adds (``Paper.smoke``: MMN and MCE train long enough on SYSU-MM01 to learn).

PLANNED = {run.name: run for run in helpers.ci_plan()}


def _pictures(cell: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


def _cell(executed: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in executed.cells if c.cell_type == "code" and code in c.source]
    return cell


def _html(cell: nbformat.NotebookNode) -> str:
    """The text of the cell's HTML outputs (its tables), tags dropped."""
    html = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("name", sorted(PLANNED))
def test_every_planned_notebook_ran_on_the_synthetic_twin_with_figures_and_records(smoke_plan, name: str) -> None:
    planned = PLANNED[name]
    executed, text, records = smoke_plan.run(name)
    assert "Synthetic data." in text  # the banner: never mistaken for a reproduction
    assert "image/png" in text and "Traceback" not in text  # figures reach the notebook
    assert str(smoke_plan.results) in text  # the notebook says where it wrote
    assert sorted(r["method"] for r in records) == sorted(planned.models)  # one record per trained model
    for record in records:
        assert record["dataset"] == planned.dataset and record["data_kind"] == "synthetic"
        assert record["trial"] == planned.trial and record["rows"] and record["cmc"]
        assert record["config"]["train"]["epochs"] == planned.parameters["epochs"]
        assert record["config"]["params"]["arch"] == "resnet18" and record["checkpoint"]["sha256"]


@pytest.mark.parametrize("name", sorted(n for n, r in PLANNED.items() if not benchmark(r.dataset).video))
def test_image_notebooks_show_the_papers_reported_numbers_beside_the_run(smoke_plan, name: str) -> None:
    planned = PLANNED[name]
    executed, text, (record,) = smoke_plan.run(name)
    table = _html(_cell(executed, "run.compare_with_paper()"))
    assert SYNTHETIC_CAPTION in table and "R1 ours" in table and "Δ" not in table
    reported = [r for r in reported_numbers() if r["method"] == planned.method and r["dataset"] == planned.dataset]
    # a paper with no row on the dataset (IV-ReID and MCE on LLCM) shows its run alone
    assert ("R1 paper" in table) == bool(reported) and all(f"{float(r['R1']):.2f}" in table for r in reported)
    assert "Reported checkpoint:" in text and {r["checkpoint"] for r in record["rows"]} <= {"last", *record["selection"]["kept"]}
    assert record["last"]["epoch"] == planned.parameters["epochs"]
    assert {r["protocol"] for r in record["rows"]} == ({"standard"} if planned.dataset != "sysu" else
                                                       {"all-search, single-shot", "all-search, multi-shot (10)",
                                                        "indoor-search, single-shot", "indoor-search, multi-shot (10)"})


def test_the_ivreid_run_on_regdb_says_which_network_and_where_it_wrote(smoke_plan) -> None:
    executed, text, (record,) = smoke_plan.run("ivreid_regdb_trial1")
    assert record["method"] == "ivreid" and record["trial"] == 1 and record["config"]["train"]["epochs"] == 2
    assert "no ReLU after the stem" in text  # which network is in force, and why
    assert "evaluating" not in text  # trained, not loaded


def _learned(record: dict, r1_over_chance: float, map_over_chance: float, map_over_untrained: float) -> None:
    """Trained (the last epoch) vs untrained and vs chance (the protocol scored on random features), all-search
    single-shot."""
    after, before, chance = ({r["protocol"]: (r["R1"], r["mAP"]) for r in rows}["all-search, single-shot"]
                             for rows in (record["last"]["rows"], record["untrained"], record["chance"]))
    numbers = f"R1, mAP: untrained {before}, trained {after}, chance {chance}"
    assert after[0] >= before[0] + 4.0 and after[1] >= before[1] + map_over_untrained, numbers
    assert after[0] >= r1_over_chance * chance[0] and after[1] >= chance[1] + map_over_chance, numbers


def test_mmn_learns_on_synthetic_sysu_and_shows_its_middle_modality(smoke_plan) -> None:
    """The plan's MMN run on SYSU-MM01 is long enough to learn (mmn.py's smoke): ResNet-18, 64 x 32, Adam, 10 x 20
    steps of 4 ids x 2 images per modality."""
    executed, text, (record,) = smoke_plan.run("mmn_sysu")
    assert record["config"]["train"]["epochs"] == 10 and record["config"]["params"]["recipe"]["fix_dc_head"] is False
    _learned(record, r1_over_chance=1.5, map_over_chance=6.0, map_over_untrained=6.0)
    assert "frozen at its random initialisation" in text  # which DC head is in force
    for variant in ("original query x original gallery", "middle-modality query", "sum of the four"):
        assert variant in _html(_cell(executed, "run.evaluate_variants()"))
    assert _pictures(_cell(executed, 'paper_figure("middle_modality")')) == 1
    assert "untrained vs trained vs chance" in text


def test_mmn_on_regdb_trains_the_dc_head_when_asked(smoke_plan) -> None:
    executed, text, (record,) = smoke_plan.run("mmn_regdb_trial1")
    assert record["method"] == "mmn" and record["config"]["params"]["recipe"]["fix_dc_head"] is True
    assert "trained (fix_dc_head=True)" in text and "frozen at its random initialisation" not in text
    assert _pictures(_cell(executed, 'paper_figure("middle_modality")')) == 1


def _memory_figure_and_selection(executed: nbformat.NotebookNode, record: dict) -> None:
    """MCE's script keeps its best mAP: the record reports that checkpoint's rows and holds the last epoch's too."""
    assert _pictures(_cell(executed, 'paper_figure("memories")')) == 1
    kept = record["selection"]["kept"]["map"]
    assert kept["metric"] == "mAP" and kept["epoch"] >= 1 and kept["rows"] == record["rows"]
    assert kept["value"] == max(s["mAP"] for s in _selection_scores(record))
    assert {r["checkpoint"] for r in record["rows"]} == {"map"} and record["selection"]["on_test_set"]
    assert {r["protocol"] for r in record["last"]["rows"]} == {r["protocol"] for r in record["rows"]}


def _selection_scores(record: dict) -> list[dict]:
    """The scheduled selection-test scores of a smoke run, from its log."""
    log = Path(record["config"]["train"]["out_dir"]) / "log.csv"
    first, every = record["config"]["train"]["eval_first"], record["config"]["train"]["eval_every"]
    rows = [r for r in csv.DictReader(log.open()) if r.get("test_mAP")]
    return [{"mAP": float(r["test_mAP"])} for r in rows if int(r["epoch"]) >= first and (int(r["epoch"]) - first) % every == 0]


def test_mce_learns_on_synthetic_sysu_with_its_memories_and_reports_its_kept_checkpoint(smoke_plan) -> None:
    """The plan's MCE run on SYSU-MM01 is long enough to learn (mce.py's smoke): ResNet-18 from scratch, 64 x 32, Adam
    at 1e-3 (1e-4 in the last epoch), 6 epochs of 45 steps of 8 ids x 2 images per modality (x 3 views), tested from
    epoch 2 on."""
    executed, text, (record,) = smoke_plan.run("mce_sysu")
    _learned(record, r1_over_chance=1.4, map_over_chance=4.0, map_over_untrained=5.0)
    _memory_figure_and_selection(executed, record)
    assert "multi-shot (10)" in text and "MCE's 10-shot galleries, last epoch" in text
    assert "best mAP on the selection test" in text and "last (epoch 6)" in text
    assert "the memory rebuilds took" in text and "epoch >= 40" in text  # the code-over-PAPERS.md note


def test_mce_on_regdb_uses_regdbs_views_memories_and_its_kept_checkpoint(smoke_plan) -> None:
    executed, text, (record,) = smoke_plan.run("mce_regdb_trial1")
    assert record["method"] == "mce" and record["config"]["params"]["recipe"]["num_per_modality"] == 5  # RegDB's
    assert {(r["protocol"], r["direction"]) for r in record["rows"]} == {("standard", "v2t"), ("standard", "t2v")}
    _memory_figure_and_selection(executed, record)
    assert "best mAP on the selection test" in text and "RegDB: no 10-shot setting" in text
    assert "erasing_grey_pad" in text  # RegDB's own views, as the official RegDBData


def test_cst_trains_cst_and_mitml_and_draws_attention_maps(smoke_plan) -> None:
    executed, text, records = smoke_plan.run("cst_vcm")
    # rollout, message attention and frame maps, for a visible and an infrared clip
    assert _pictures(_cell(executed, "attention_examples()")) == 6
    assert "MITML" in text and "IBAN (as reported by CST)" in text and "this run (synthetic)" in text
    assert "MITML at the paper's size (ResNet-50, 500 identities): 135.0M + 8.4M" in text
    assert "CST at the paper's size (ResNet-50, 288 x 144, S = 14, 500 identities): 305.5M parameters" in text
    assert "fresh_second_view=True" in text and "dc_covariance_fix=True" in text  # the defects and their fixes named
    (mitml,) = [r for r in records if r["method"] == "mitml"]
    assert mitml["config"]["params"]["confusion_epoch"] == 1
    # MITML's four kept checkpoints, both directions reported from the IR -> VIS mAP one (test.py's default); CST's two
    assert set(mitml["selection"]["kept"]) == {"t2v_rank1", "t2v_map", "v2t_rank1", "v2t_map"}
    assert mitml["selection"]["reported"] == {"ir2rgb": "t2v_map", "rgb2ir": "t2v_map"}
    (cst,) = [r for r in records if r["method"] == "cst"]
    assert cst["selection"]["reported"] == {"ir2rgb": "t2v_rank1", "rgb2ir": "v2t_rank1"}
    assert all(entry["epoch"] == 1 for entry in cst["selection"]["kept"].values())  # the only test of 2 epochs
    (log,) = [p for p in (smoke_plan.out_dir / "runs" / "mitml_vcm").rglob("log.csv") if "modality_accuracy" in p.read_text()]
    rows = list(csv.DictReader(log.open()))
    assert float(rows[0]["confusion"]) == 0 and float(rows[1]["confusion"]) > 0  # on from (0-based) epoch 1
    for record in records:
        assert {row["direction"] for row in record["rows"]} == {"ir2rgb", "rgb2ir"}
    assert cst["config"]["params"]["seq_len"] == 4 and mitml["config"]["params"]["seq_len"] == 6  # CST's smoke, MITML's own


def test_star_trains_star_and_its_baseline_and_draws_skeleton_maps(smoke_plan) -> None:
    executed, text, records = smoke_plan.run("star_vcm")
    assert "ground-truth** keypoints" in text and "keypoints from: ground truth" in text
    for code, count in (("plot_skeleton_clip(", 2), ("plot_graph_attention(", 4), ("plot_pooling_weights(", 4)):
        assert _pictures(_cell(executed, code)) == count, code  # a visible and an infrared clip each
    assert "STAR baseline" in text and "this run (synthetic)" in text and "58.56" in text
    (star,) = [r for r in records if r["method"] == "star"]
    assert star["config"]["params"]["recipe"]["official_graph"] is False  # star.py's smoke: the non-default graph
    assert star["config"]["params"]["recipe"]["test_frames"] == "random"
    assert star["selection"]["reported"] == {"ir2rgb": "t2v_map", "rgb2ir": "v2t_map"}
    assert "bones in every frame (official_graph=False)" in text and "random frame of each chunk" in text
    assert star["config"]["params"]["skeleton_store"].endswith("skeletons_coco17.h5")
    for record in records:
        assert {row["direction"] for row in record["rows"]} == {"ir2rgb", "rgb2ir"}


# ------------------------------------------------------------------ what the smoke plan cannot do

def test_an_agw_checkpoint_in_the_authors_layout_evaluates_through_the_notebook(tmp_path: Path) -> None:
    from tests.papers.test_official_checkpoints import EmbedNetOfficial, randomise
    from vireid_lib.experiments import prepare

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


def test_command_line_entry_trains_under_torchrun_with_two_cpu_processes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "vireid_lib.experiments", "--method", "ivreid", "--dataset", "regdb", "--no-pretrained",
               "--epochs", "1", "--height", "64", "--width", "32", "--batches-per-epoch", "2", "--num-ids", "4",
               "--workers", "0", "--device", "cpu", "--out-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    done = helpers.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "results").glob("regdb_ivreid_synthetic_*.json"))) == 1  # rank 0 alone wrote it
    assert (tmp_path / "runs/ivreid_regdb/trial1/last.pt").is_file()


def test_star_on_buptcampus_reads_the_twins_skeletons_and_shows_the_other_pairings(smoke_plan) -> None:
    executed, text, records = smoke_plan.run("star_bupt")
    assert sorted(r["method"] for r in records) == ["star", "star_baseline"]
    assert all(r["dataset"] == "bupt" and r["config"]["params"]["recipe"]["test_frames"] == "uniform" for r in records)
    assert "STAR on BUPTCampus (synthetic)" in text and "skeletons_coco17.h5" in text
    assert "STAR's code has no BUPTCampus" in text  # the deviation shown where it applies
    shown = _html(_cell(executed, "run.show_other_settings(others)"))
    assert all(pairing in shown for pairing in ("rgb2rgb", "ir2ir", "all"))
    star_vcm = smoke_plan.run("star_vcm")[1]
    assert "HITSZ-VCM has no other official test setting" in star_vcm and "STAR's code has no BUPTCampus" not in star_vcm
