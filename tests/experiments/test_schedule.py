"""A run of other epochs than the paper's: the paper's warm-up and steps by default (with a warning when the run ends
inside them), scaled to the run's length only when asked."""

from __future__ import annotations

import pytest

from vireid_lib import papers
from vireid_lib.engine import TrainConfig
from vireid_lib.experiments.runner import resolve_recipe


def test_a_short_run_is_told_it_never_leaves_the_warm_up() -> None:
    with pytest.warns(UserWarning, match=r"epochs=1 ends inside the paper's 10-epoch warm-up: .*peaks at 10% of "
                                         r"lr=0.00035.*scale_schedule=True"):
        recipe = resolve_recipe(papers.paper("cst"), "vcm", {"epochs": 1})
    assert (recipe.warmup_epochs, recipe.milestones) == (10, (35, 80))  # the paper's, unchanged
    with pytest.warns(UserWarning, match=r"epochs=15 ends before the paper's first lr step \(epoch 20\)"):
        resolve_recipe(papers.paper("agw"), "sysu", {"epochs": 15})


def test_scale_schedule_fits_the_warm_up_and_steps_to_the_run() -> None:
    recipe = resolve_recipe(papers.paper("agw"), "sysu", {"epochs": 9, "scale_schedule": True})
    assert (recipe.warmup_epochs, recipe.milestones) == (1, (2, 6))  # 10, 20, 50 of 81 -> 1, 2, 6 of 9
    config = TrainConfig(epochs=9, warmup_epochs=recipe.warmup_epochs, milestones=recipe.milestones)
    assert [config.lr_factor(e) for e in range(9)] == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    same = resolve_recipe(papers.paper("agw"), "sysu", {"scale_schedule": True})  # the paper's epochs: nothing to fit
    assert (same.warmup_epochs, same.milestones) == (10, (20, 50))
