"""The paper interface: a paper declared in a test plugs in, trains and records without touching the runner."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from vireid_lib import papers
from vireid_lib.experiments.common import ExperimentError
from vireid_lib.experiments import prepare
from vireid_lib.experiments import params
from vireid_lib.interface import integer, param
from vireid_lib.papers import BatchLayout, Deviation, Hooks, Paper, Recipe, Variant

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ToyRecipe(Recipe):
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    height: int = 32
    width: int = 16
    num_ids: int = 2
    num_per_modality: int = 2
    cache_training_images: bool = False
    width_factor: int = param(4, integer(1))  # a knob only this paper has, checked where it is declared
    toy_weight: float = 0.5  # no check declared: inferred from the default (a finite number >= 0)


class Toy(nn.Module):
    """One conv for both modalities; outputs over [visible; infrared; visible again]."""

    def __init__(self, classes: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=4)
        self.head = nn.Linear(width, classes)
        self.register_buffer("epochs_seen", torch.zeros(()))

    def forward(self, visible=None, infrared=None):
        parts = [x for x in (visible, infrared) if x is not None]
        if self.training:
            parts.append(visible)  # the layout below labels it as visible again
        feature = self.conv(torch.cat(parts)).mean((2, 3))
        return {"logits": self.head(feature)} if self.training else {"embedding": feature, "double": 2 * feature}


class ToyCriterion(nn.Module):
    def forward(self, outputs, labels):
        loss = nn.functional.cross_entropy(outputs["logits"], labels)
        return {"loss": loss, "id": loss.detach()}


def count_epoch(run, epoch: int) -> None:
    run.model.epochs_seen += 1


TOY = Paper(method="toy", title="Toy", datasets=("sysu",), recipe=ToyRecipe(),
            build=lambda classes, recipe, weights: Toy(classes, recipe.width_factor),
            criterion=lambda classes, recipe, dataset: ToyCriterion(),
            batch=BatchLayout(labels=("visible", "infrared", "visible")),
            hooks=Hooks(on_epoch_start=count_epoch),
            variants={"plain": Variant("embedding"), "doubled": Variant("double", "dot")},
            deviations=(Deviation("Its width is a quarter of what the paper says.", "width_factor=16"),
                        Deviation("Its nesterov flag is the workbook's.", "nesterov=False", default="workbook"),
                        Deviation("It cannot be switched.")))


def test_a_declared_paper_trains_evaluates_and_records_through_the_generic_runner(synthetic_sysu: Path, tmp_path: Path) -> None:
    papers.register(TOY)
    run = prepare(method="toy", dataset="sysu", data_root=str(synthetic_sysu), pretrained=False, epochs=2,
                  batches_per_epoch=1, width_factor=8, device="cpu", workers=0, eval_trials=1, progress=False,
                  out_dir=str(tmp_path))
    assert run.recipe.width_factor == 8 and run.model.conv.out_channels == 8
    result = run.train()
    assert len(result.history) == 2 and int(run.model.epochs_seen) == 2  # the hook ran every epoch
    assert run.evaluate().summary["R1"].notna().all()
    assert set(run.evaluate_variants()["variant"]) == {"plain", "doubled"}
    # which side of each documented difference the run is on: width_factor differs from the paper's default
    assert list(run.deviations()["this run"]) == ["changed (width_factor=8)", "the workbook's (nesterov=True)",
                                                  "as the code (no switch)"]
    record = json.loads(run.record(tmp_path / "results").read_text())
    assert record["paper"] == "Toy" and record["config"]["params"]["recipe"]["width_factor"] == 8
    with pytest.raises(ExperimentError, match="tube does not apply to Toy"):
        prepare(method="toy", dataset="sysu", data_root=str(synthetic_sysu), tube=(2, 2, 2), device="cpu",
                out_dir=str(tmp_path))


def test_the_runner_engine_and_evaluator_name_no_paper() -> None:
    names = {p.method for p in papers.papers().values()} | {"mitml", "mce", "star"}
    pattern = re.compile(r"(==|!=| in) *[(\[{]?['\"](" + "|".join(sorted(names)) + r")['\"]")
    for folder in ("engine", "eval", "experiments"):
        for path in (ROOT / "vireid_lib" / folder).glob("*.py"):
            hits = [line for line in path.read_text().splitlines() if pattern.search(line)]
            assert hits == [], f"{path.relative_to(ROOT)} branches on a paper's name: {hits[:2]}"


@pytest.mark.parametrize("given, refused", [
    (dict(width_factor=0), "width_factor=0 is invalid: it must be an integer >= 1"),
    (dict(width_factor=2.5), "width_factor=2.5 is invalid: it must be an integer >= 1"),
    (dict(toy_weight=-1.0), "toy_weight=-1.0 is invalid: it must be a finite number >= 0"),
    (dict(toy_weight=float("inf")), "toy_weight=inf is invalid"),
    (dict(lr=0), "lr=0 is invalid: it must be a finite number > 0"),  # the base recipe's check, inherited
    (dict(arch="vgg16"), "arch='vgg16' is invalid: it must be one of"),
])
def test_a_new_papers_parameters_are_checked_by_its_own_recipe(given: dict, refused: str, tmp_path: Path) -> None:
    """No shared table lists a paper's fields: the toy's own declaration checks them before anything is built."""
    papers.register(TOY)
    with pytest.raises(ExperimentError, match=re.escape(refused)):
        prepare(method="toy", dataset="sysu", pretrained=False, device="cpu", out_dir=str(tmp_path), **given)


def test_the_runners_parameter_table_names_no_papers_field() -> None:
    """params.RULES holds the runner's own parameters only; a paper's field is checked by its recipe."""
    base = Recipe.field_names()
    own = {name for p in papers.workbook_papers().values() for d in p.datasets
           for name in type(p.recipe_for(d)).field_names()} - base
    assert own and not own & set(params.RULES), sorted(own & set(params.RULES))
