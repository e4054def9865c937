"""The README's recipes table, generated from the papers' declarations (never typed by hand).

Per paper (and per dataset where its recipe differs): the checkpoint its official script reports
and the test that picks it, the test schedule, the optimiser's learning-rate groups as the
paper's model and criterion declare them (each group's factor of ``lr`` and its peak rate), the
schedule, and every documented difference from the official code with the parameter that
switches it. ``python -m vireid_lib.results readme`` rewrites it between its markers together
with the results tables.
"""

from __future__ import annotations

from dataclasses import replace

from .. import papers as registry
from ..benchmarks import benchmark
from ..interface import Paper, Recipe

START = "<!-- vireid:recipes:start -->"
END = "<!-- vireid:recipes:end -->"
TEST_SET_SELECTION = "chooses its reported checkpoint on the test set itself (no validation split)"


def lr_groups(paper: Paper, dataset: str) -> list[tuple[str, float]]:
    """``(name, factor of lr)`` of every optimiser group the paper's model and criterion declare (built small and
    untrained: the groups do not depend on the network's size)."""
    recipe = replace(paper.recipe_for(dataset), arch="resnet18")
    model = paper.build(4, recipe, {"pretrained": False, "weights_file": None})
    criterion = paper.criterion(4, recipe, dataset)
    groups = model.param_groups(1.0) if hasattr(model, "param_groups") else [{"name": "every parameter", "lr": 1.0}]
    if hasattr(criterion, "param_groups"):
        groups += [g for g in criterion.param_groups(1.0) if g["params"]]
    return [(group.get("name", "unnamed"), float(group["lr"])) for group in groups]


def describe_groups(paper: Paper, dataset: str) -> str:
    recipe = paper.recipe_for(dataset)
    return "; ".join(f"{name}: {_number(factor)} x lr = {_number(factor * recipe.lr)}"
                     for name, factor in lr_groups(paper, dataset))


def describe_schedule(recipe: Recipe) -> str:
    optimiser = "SGD" + (" (Nesterov, momentum 0.9)" if recipe.nesterov and recipe.optimizer == "sgd" else "") \
        if recipe.optimizer == "sgd" else "Adam"
    head = f"{optimiser}, lr {_number(recipe.lr)}, weight decay {_number(recipe.weight_decay)}"
    if recipe.schedule == "constant":
        return f"{head}, constant, {recipe.epochs} epochs"
    steps = ", ".join(f"x{_number(recipe.gamma ** (k + 1))} from epoch {m}" for k, m in enumerate(recipe.milestones))
    warmup = f"warm-up {recipe.warmup_epochs} epochs, " if recipe.warmup_epochs else ""
    return f"{head}, {warmup}{steps} (0-based), {recipe.epochs} epochs"


def describe_reported(recipe: Recipe, datasets: tuple[str, ...]) -> str:
    rule = recipe.selection_rule
    if not rule.keeps:
        return "the last epoch (no test-selected checkpoint)"
    kept = "; ".join(f"`{k.name}` = best {k.metric}{' ' + k.direction if k.direction else ''}" for k in rule.keeps)
    ties = {k.ties for k in rule.keeps}
    tie_rule = ("the earlier of equal scores (`>`)" if ties == {"first"} else
                "the later of equal scores (`>=`)" if ties == {"last"} else "per keep")
    tests = "; ".join(benchmark(d).describe_selection(rule) for d in datasets)
    reported = ", ".join(f"{direction} from `{keep}`" for direction, keep in rule.reported) or f"`{rule.keeps[0].name}`"
    return (f"kept: {kept} ({tie_rule}), on {tests}; reported: {reported}. "
            f"The script {TEST_SET_SELECTION}: `selection=\"last\"` reports the last epoch instead")


def render_recipes() -> str:
    lines = [
        "| paper | dataset | reported checkpoint (the official script's rule) | test schedule (1-based epochs) "
        "| learning-rate groups (x lr = peak) | optimiser and schedule | documented deviations (flag) |",
        "|---|---|---|---|---|---|---|",
    ]
    for paper in registry.workbook_papers().values():
        for datasets in _dataset_groups(paper):
            recipe = paper.recipe_for(datasets[0])
            schedule = recipe.selection_rule.schedule(recipe.epochs)
            tested = ("none" if not schedule else ", ".join(map(str, schedule)) if len(schedule) <= 4 else
                      f"{schedule[0]}, {schedule[1]}, ..., {schedule[-1]} (every {recipe.selection_rule.eval_every})")
            deviations = " ".join(f"{d.what} ({_switch(d)})" for d in paper.deviations
                                  if any(d.applies_to(dataset) for dataset in datasets)) or "none documented"
            lines.append(
                f"| {paper.title} | {', '.join(benchmark(d).name for d in datasets)} "
                f"| {describe_reported(recipe, datasets)} | {tested} | {describe_groups(paper, datasets[0])} "
                f"| {describe_schedule(recipe)} | {deviations} |")
    return "\n".join(lines)


def _switch(deviation) -> str:
    if deviation.default == "official":
        return f"the default follows the code; `{deviation.flag}` fixes it" if deviation.flag else \
            "the default follows the code; no switch"
    return f"the workbook's default; `{deviation.flag}` for the alternative" if deviation.flag else "the workbook's default"


def _dataset_groups(paper: Paper) -> list[tuple[str, ...]]:
    """The paper's datasets grouped by identical recipes (one row each)."""
    groups: dict[Recipe, list[str]] = {}
    for dataset in paper.datasets:
        groups.setdefault(paper.recipe_for(dataset), []).append(dataset)
    return [tuple(v) for v in groups.values()]


def _number(value: float) -> str:
    return f"{value:g}"
