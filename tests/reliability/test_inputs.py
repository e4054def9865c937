"""Bad inputs and mixed-up runs: each gets a clear error or a safe outcome (see README.md here)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests import helpers
from vireid_lib.data import DatasetError
from vireid_lib.data.provenance import data_kind
from vireid_lib.data.synthetic import MARKER
from vireid_lib.data.regdb import RegDB
from vireid_lib.data.sysu import SYSUMM01
from vireid_lib.engine import CheckpointError
from vireid_lib.engine.runlock import RunLocked, run_lock
from vireid_lib.experiments.common import ExperimentError
from vireid_lib.experiments import prepare
from vireid_lib.experiments.params import SHARED, beside, parameters
from vireid_lib.results import RecordError, load_records, render_tables, write_record

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(method="agw", dataset="sysu", pretrained=False, arch="resnet18", height=64, width=32, optimizer="adam",
            lr=1e-3, epochs=1, batches_per_epoch=1, num_ids=2, workers=0, device="cpu", eval_trials=1, progress=False)


def tiny(root: Path, out: Path, **changes):
    return prepare(data_root=str(root), out_dir=str(out), **{**TINY, **changes})


# ------------------------------------------------------------------ one run, one identity, one folder

def test_resuming_with_other_settings_lists_every_differing_field(synthetic_sysu: Path, tmp_path: Path) -> None:
    tiny(synthetic_sysu, tmp_path).train()
    again = tiny(synthetic_sysu, tmp_path, height=96, width=48, epochs=2, batches_per_epoch=2)
    with pytest.raises(CheckpointError) as info:
        again.train()
    message = str(info.value)
    for field in ("identity.transform.height: 64 -> 96", "identity.transform.width: 32 -> 48",
                  "identity.sampler.epoch_length: 1 -> 2"):
        assert field in message
    assert "epochs" not in message.split("differ:")[1].split("; ")[0]  # more epochs is how a run is extended
    assert "--no-resume" in message
    tiny(synthetic_sysu, tmp_path, height=96, width=48, resume=False).train()  # starting over is allowed


def test_a_second_process_cannot_write_a_locked_run_folder(synthetic_sysu: Path, tmp_path: Path) -> None:
    run = tiny(synthetic_sysu, tmp_path)
    with helpers.process_tree([sys.executable, "-c", "import time; time.sleep(60)"]) as other:  # killed on leaving
        Path(run.train_config.out_dir).mkdir(parents=True)
        (Path(run.train_config.out_dir) / "run.lock").write_text(
            json.dumps({"pid": other.pid, "host": socket.gethostname(), "started": "now"}))
        with pytest.raises(RunLocked, match=rf"pid {other.pid}.*choose another out_dir"):
            run.train()
    # The owner is gone now: its lock is stale, taken over with a warning, and left behind is a killed write.
    leftover = Path(run.train_config.out_dir) / ".last.pt.tmp12345"
    leftover.write_bytes(b"partial")
    with pytest.warns(UserWarning, match="is gone; taking over"):
        run.train()
    assert not leftover.exists() and not (Path(run.train_config.out_dir) / "run.lock").exists()


def test_the_lock_is_held_while_training(tmp_path: Path) -> None:
    with run_lock(tmp_path):
        with pytest.raises(RunLocked):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):  # released on exit
        pass


def test_two_processes_generating_one_synthetic_twin_both_get_it(tmp_path: Path) -> None:
    code = ("import sys; from vireid_lib.data.synthetic import SyntheticConfig, ensure_synthetic; "
            "print(ensure_synthetic('regdb', sys.argv[1], SyntheticConfig(ids=8)))")
    target = tmp_path / "twin"
    with contextlib.ExitStack() as stack:  # both killed with what they started if the test stops early
        processes = [stack.enter_context(helpers.process_tree([sys.executable, "-c", code, str(target)], text=True,
                                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE))
                     for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    assert (target / MARKER).is_file() and not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.lock"))


# ------------------------------------------------------------------ provenance

def test_a_copied_twin_without_its_marker_is_custom_not_real(synthetic_sysu: Path, tmp_path: Path) -> None:
    copy = tmp_path / "SYSU-MM01"
    shutil.copytree(synthetic_sysu, copy)
    (copy / MARKER).unlink()
    kind, sizes = data_kind(copy, SYSUMM01(copy))
    assert kind == "custom" and sizes != SYSUMM01.PUBLISHED
    assert tiny(copy, tmp_path / "runs").data_kind == "custom"


def record(kind: str, sizes: dict, r1: float, trial: int | None = None, dataset: str = "sysu", created: str = "2026-01-01") -> dict:
    protocol, direction = ("standard", "v2t") if dataset == "regdb" else ("all-search, single-shot", "ir2rgb")
    rows = [{"protocol": protocol, "direction": direction, "trials": 10, "R1": r1, "mAP": r1, "mINP": r1,
             "checkpoint": "rank1", "epoch": 41}]
    return {"schema": 3, "paper": "AGW", "method": "agw", "dataset": dataset, "data_kind": kind, "created": created,
            "rows": rows, "last": {"epoch": 81, "rows": rows}, "selection": {"selection": "official", "on_test_set": True},
            "settings": {"paper": True, "differs": {}, "label": "paper settings"},
            "config": {"params": {}, "train": {"epochs": 81}}, "versions": {}, "data_sizes": sizes, "trial": trial}


def test_a_record_edited_to_claim_real_data_stays_out_of_the_reproduced_columns(tmp_path: Path) -> None:
    write_record(record("real", {"train_ids": 20, "queries": 80, "all_search_gallery_trial0": 40}, 91.0), tmp_path)
    table = render_tables(load_records(tmp_path))
    reproduced = table.split("not reproductions")[0]
    assert "91.00" not in reproduced
    write_record(record("real", SYSUMM01.PUBLISHED, 48.0), tmp_path)
    assert "| 47.50 | 48.00 ± — |" not in render_tables(load_records(tmp_path))
    assert "| AGW | SYSU-MM01 | all-search, single-shot | IR → VIS | 47.50 | 48.00 |" in render_tables(load_records(tmp_path))
    done = helpers.run([sys.executable, "-m", "vireid_lib.results", "readme", "--readme", str(_readme(tmp_path)),
                        "--results", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0 and "are not the published" in done.stderr


def _readme(folder: Path) -> Path:
    readme = folder / "README.md"
    readme.write_text("<!-- vireid:results:start -->\n<!-- vireid:results:end -->\n")
    return readme


def test_regdb_reproduced_cells_average_the_latest_record_of_every_trial(tmp_path: Path) -> None:
    sizes = RegDB.PUBLISHED
    write_record(record("real", sizes, 10.0, trial=1, dataset="regdb", created="2026-01-01"), tmp_path)
    write_record(record("real", sizes, 70.0, trial=1, dataset="regdb", created="2026-01-02"), tmp_path)  # supersedes
    write_record(record("real", sizes, 72.0, trial=2, dataset="regdb", created="2026-01-03"), tmp_path)
    line = next(l for l in render_tables(load_records(tmp_path)).splitlines() if l.startswith("| AGW | RegDB"))
    assert "| 71.00 ± 1.41 |" in line and "2 of 10 trials" in line


def test_evaluating_a_checkpoint_records_the_settings_that_made_it(synthetic_sysu: Path, tmp_path: Path) -> None:
    trained = tiny(synthetic_sysu, tmp_path / "a", epochs=2, seed=7)
    trained.train()
    evaluated = tiny(synthetic_sysu, tmp_path / "b", epochs=1, checkpoint=str(trained.train_result.checkpoint))
    evaluated.evaluate()
    saved = json.loads(evaluated.record(tmp_path / "results").read_text())
    assert saved["config"]["train"]["epochs"] == 2 and saved["config"]["train"]["seed"] == 7
    assert saved["weights"]["kind"] == "vireid checkpoint" and saved["evaluated_with"]["epochs"] == 1


def test_record_names_are_unique_and_carry_the_trial(tmp_path: Path) -> None:
    first = write_record(record("synthetic", {}, 1.0, trial=3, dataset="regdb"), tmp_path)
    second = write_record(record("synthetic", {}, 1.0, trial=3, dataset="regdb"), tmp_path)
    assert first != second and "trial3" in first.name and len(list(tmp_path.glob("*.json"))) == 2


# ------------------------------------------------------------------ values are values

@pytest.mark.parametrize("name, value", [("epochs", 0), ("lr", 0), ("lr", -1e-3), ("height", 0), ("batches_per_epoch", 0),
                                         ("num_ids", 0), ("num_per_modality", -1), ("seed", -1), ("workers", -1),
                                         ("eval_trials", 11), ("synthetic_ids", 0), ("arch", "resnet51"),
                                         ("optimizer", "adamw"), ("backbone_lr_factor", 0)])
def test_zero_and_out_of_range_values_are_errors_naming_the_parameter(synthetic_sysu: Path, tmp_path: Path, name, value) -> None:
    with pytest.raises(ExperimentError, match=rf"{name}={value!r}"):
        tiny(synthetic_sysu, tmp_path, **{name: value})


def test_video_zero_values_are_errors_too(tmp_path: Path) -> None:
    from vireid_lib.experiments import prepare as prepare_video

    for name in ("seq_len", "epochs", "heads", "dim_head"):
        with pytest.raises(ExperimentError, match=rf"{name}=0 is invalid"):
            prepare_video("cst", **{name: 0}, pretrained=False, device="cpu", out_dir=str(tmp_path))


def test_mixed_precision_on_the_cpu_is_an_error(synthetic_sysu: Path, tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="amp='fp16' needs a CUDA device"):
        tiny(synthetic_sysu, tmp_path, amp="fp16")


def test_the_shared_parameters_are_declared_once_and_every_notebook_hands_its_parameters_over() -> None:
    import jupytext

    from vireid_lib.papers import papers

    notebooks = {p.notebook for p in papers().values() if p.notebook}  # compare.ipynb trains nothing
    assert notebooks
    for path in sorted(ROOT / "notebooks" / name.replace(".ipynb", ".py") for name in notebooks):
        cells = jupytext.read(path).cells
        (cell,) = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        declared = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
        assert not declared & set(SHARED), f"{path.name} repeats shared parameters {sorted(declared & set(SHARED))}"
        assert any("parameters(" in c.source and "prepare(" in c.source for c in cells), path.name


def test_parameters_reads_the_parameters_cell_papermills_cell_and_the_shared_names() -> None:
    declared = 'dataset = "sysu"\nlr = None\ntrain_other = True\n'
    namespace = {"In": ["", declared, '# Parameters\nlr = 0.5\ndevice = "cpu"\narhc = "x"\n', "run = prepare(...)"],
                 "dataset": "sysu", "lr": 0.5, "train_other": True, "device": "cpu", "arhc": "x", "picks": [1, 2]}
    # every injected name is handed over (a misspelt one is then refused by prepare, naming it); stray values are not
    assert parameters(namespace, local=("train_other",)) == {"dataset": "sysu", "lr": 0.5, "device": "cpu", "arhc": "x"}
    # cell by cell in JupyterLab: the cell as declared, a shared name set in the namespace, nothing injected
    namespace["In"] = ["", declared, "x = 1\nrun = 2", "run = prepare(...)"]
    del namespace["arhc"]
    assert parameters(namespace) == {"dataset": "sysu", "lr": 0.5, "train_other": True, "device": "cpu"}


def test_a_parameter_no_one_takes_is_an_error_naming_it(synthetic_sysu: Path, tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="arhc does not apply to MMN"):
        prepare("mmn", "sysu", data_root=str(synthetic_sysu), arhc="resnet18", pretrained=False, out_dir=str(tmp_path))


def test_a_second_paper_gets_the_shared_values_and_its_prefixed_ones_never_the_first_ones_checkpoint() -> None:
    main, second = beside({"lr": 1e-3, "mitml_lr": 0.01, "device": "cpu", "checkpoint": "cst.t", "tube": (2, 2, 1)},
                          "mitml")
    assert main == {"lr": 1e-3, "device": "cpu", "checkpoint": "cst.t", "tube": (2, 2, 1)}
    assert second == {"device": "cpu", "lr": 0.01}


# ------------------------------------------------------------------ tooling and messages

def test_results_tooling_names_the_bad_file_and_field(tmp_path: Path) -> None:
    done = helpers.run([sys.executable, "-m", "vireid_lib.results", "readme", "--readme", str(_readme(tmp_path)),
                        "--results", str(tmp_path / "resluts")], capture_output=True, text=True)
    assert done.returncode == 2 and "resluts does not exist" in done.stderr
    good = record("synthetic", {}, 5.0)
    for broken, expected in ((lambda r: r.pop("rows"), "lacks the field 'rows'"),
                             (lambda r: r["rows"][0].update(mAP="high"), r"mAP='high' is not a number"),
                             (lambda r: r["rows"][0].update(direction="up"), "direction='up' must be one of"),
                             (lambda r: r.update(dataset="market"), "dataset='market' must be one of"),
                             (lambda r: r.update(schema=1), "schema=1")):
        bad = json.loads(json.dumps(good))
        broken(bad)
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "edited.json").write_text(json.dumps(bad))
        with pytest.raises(RecordError, match=rf"edited.json.*{expected}"):
            load_records(folder)
    epochs = tmp_path / "epochs"
    write_record(good, epochs)
    assert "| rank1, epoch 41 of 81 |" in render_tables(load_records(epochs))  # the synthetic table's checkpoint column


def test_the_experiments_command_prints_the_message_not_a_traceback(tmp_path: Path, capsys) -> None:
    from vireid_lib.experiments.__main__ import main

    for arguments, expected in ((["--epochs", "0"], "epochs=0 is invalid"),
                                (["--data-root", str(tmp_path / "nowhere")], "nowhere"),
                                (["--checkpoint", str(ROOT / "README.md"), "--no-pretrained", "--arch", "resnet18",
                                  "--height", "64", "--width", "32"], "is not a PyTorch file")):
        code = main([*arguments, "--device", "cpu", "--workers", "0", "--out-dir", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        assert code == 1 and "error: " in err and expected in err and "Traceback" not in err, err[-2000:]


def test_a_state_dict_checkpoint_loads_strictly(synthetic_sysu: Path, tmp_path: Path) -> None:
    run = tiny(synthetic_sysu, tmp_path / "a")
    torch.save(run.model.state_dict(), tmp_path / "weights.pt")
    assert tiny(synthetic_sysu, tmp_path / "b", checkpoint=str(tmp_path / "weights.pt")).loaded.kind == "state dict"
    torch.save({k: v for k, v in run.model.state_dict().items() if "classifier" not in k}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing keys.*classifier"):
        tiny(synthetic_sysu, tmp_path / "c", checkpoint=str(tmp_path / "partial.pt"))


def test_check_images_reports_a_corrupt_image(synthetic_regdb: Path, tmp_path: Path) -> None:
    copy = tmp_path / "RegDB"
    shutil.copytree(synthetic_regdb, copy)
    victim = sorted((copy / "Thermal").rglob("*.bmp"))[0]
    victim.write_bytes(victim.read_bytes()[:64])
    done = helpers.run([sys.executable, "-m", "vireid_lib.data", "summary", "regdb", str(copy), "--check-images"],
                       capture_output=True, text=True)
    assert done.returncode == 2 and f"corrupt: {victim}" in done.stderr and "1 image(s)" in done.stderr


def test_a_vcm_frame_name_that_does_not_decode_names_the_file_and_line(synthetic_vcm: Path, tmp_path: Path) -> None:
    from vireid_lib.data import HITSZVCM

    copy = tmp_path / "VCM"
    shutil.copytree(synthetic_vcm, copy)
    names = next(copy.rglob("train_name.txt"))
    lines = names.read_text().splitlines()
    lines[4] = "garbage.jpg"
    names.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"{names}, line 5: frame name 'garbage.jpg' does not decode"):
        HITSZVCM(copy).train()


def test_the_generator_refuses_zero_identities(tmp_path: Path) -> None:
    done = helpers.run([sys.executable, "-m", "vireid_lib.data.synthetic", "sysu", str(tmp_path / "x"), "--ids", "0"],
                       capture_output=True, text=True)
    assert done.returncode == 2 and "--ids 0 must be a positive number" in done.stderr
