"""The rule that picks the checkpoint a paper reports: the checkpoints kept during training
(:class:`Keep`) and a paper's whole selection rule (:class:`Selection`).

Plain data, imported by the engine (which keeps the checkpoints) and by the paper interface
(where each paper declares its script's rule); it imports nothing of the workbook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SELECTIONS = ("official", "last")  # Recipe.selection: the script's checkpoint, or the last epoch only
TIES = ("first", "last")
KEEP_METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


class SelectionError(ValueError):
    """A selection rule is malformed; the message names the field."""


@dataclass(frozen=True)
class Keep:
    """One checkpoint kept during training: the epoch whose selection-test ``metric`` (of ``direction``, or of
    the test's only direction when empty) is the best so far, written to ``best_<name>.pt``.

    ``ties``: ``"first"`` keeps the earlier epoch when a later one only equals it (the scripts'
    ``if score > best``), ``"last"`` takes the later one (``>=``). The first test always sets it.
    """

    name: str
    metric: str = "R1"
    direction: str = ""
    ties: str = "first"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.name or ""):
            raise SelectionError(f"Keep.name={self.name!r} must be letters, digits and '_' (it names best_<name>.pt).")
        if self.metric not in KEEP_METRICS:
            raise SelectionError(f"Keep.metric={self.metric!r} is not one of {KEEP_METRICS}.")
        if self.ties not in TIES:
            raise SelectionError(f"Keep.ties={self.ties!r} is not one of {TIES} ('first': a later epoch must be better, "
                                 "as `score > best`; 'last': equal is enough, as `score >= best`).")

    @property
    def key(self) -> str:
        """The name of its score among the selection test's scores, e.g. ``"ir2rgb mAP"`` or ``"R1"``."""
        return f"{self.direction} {self.metric}" if self.direction else self.metric

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` replaces the kept ``best`` (``None``: nothing kept yet)."""
        return best is None or value > best or (self.ties == "last" and value == best)


@dataclass(frozen=True)
class Selection:
    """How the official training script picks the checkpoint whose numbers it reports.

    The script tests on the test set itself during training (none of these papers holds out a
    validation set): after every ``eval_every``-th epoch from the 1-based ``eval_first`` on (0: the
    multiples of ``eval_every``; ``eval_every=0``: no test during training). Each test is the
    *selection test*: SYSU-MM01 ``selection_trials`` single-shot ``mode``-search galleries drawn with
    seeds ``gallery_seed + k * gallery_seed_step`` in the ``walk`` order, scores averaged; RegDB the
    run's trial; HITSZ-VCM the test split. ``rule`` is the scoring rule ("" the dataset's own; MMN
    scores SYSU-MM01 with ``eval_regdb``), ``directions`` what RegDB or HITSZ-VCM scores (empty:
    RegDB visible-to-thermal, HITSZ-VCM both). The test feature and distance are the paper's
    reported variant, or the one ``variant`` names (a script whose training-time test has no flip averaging while
    its reported test has it).

    ``keeps``: the checkpoints the script keeps, each by one score (:class:`Keep`:
    R1 or mAP, a direction, the tie rule of its ``>`` or ``>=``). ``reported``: ``(direction, keep)``
    pairs saying which kept checkpoint the paper's numbers of that direction come from (a direction
    not listed: the first keep). No keeps: the last epoch is the result. ``source`` cites the code.
    """

    eval_every: int = 0
    eval_first: int = 0
    keeps: tuple[Keep, ...] = ()
    reported: tuple[tuple[str, str], ...] = ()
    mode: str = "all"
    selection_trials: int = 1
    gallery_seed: int = 0
    gallery_seed_step: int = 1
    walk: str = "identity"
    rule: str = ""
    directions: tuple[str, ...] = ()
    variant: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        names = [k.name for k in self.keeps]
        unknown = [keep for _, keep in self.reported if keep not in names]
        if unknown:
            raise SelectionError(f"Selection.reported names {unknown}, which are not among its keeps {names}.")

    def gallery_seeds(self) -> list[int]:
        """The seeds of the SYSU-MM01 selection galleries."""
        return [self.gallery_seed + k * self.gallery_seed_step for k in range(self.selection_trials)]

    def keep_for(self, direction: str) -> Keep | None:
        """The kept checkpoint whose numbers the paper reports for ``direction`` (None: no keeps)."""
        chosen = dict(self.reported).get(direction)
        return next((k for k in self.keeps if k.name == chosen), self.keeps[0] if self.keeps else None)

    def schedule(self, epochs: int) -> list[int]:
        """The 1-based epochs after which the selection test runs, for a run of ``epochs``."""
        if not self.eval_every:
            return []
        first = self.eval_first or self.eval_every
        return list(range(first, epochs + 1, self.eval_every))

    def describe(self, test: str, epochs: int) -> str:
        """One line a reader can check against the script, e.g. for a notebook or the README; ``test`` says what
        the selection test scores on the run's dataset (its benchmark's ``describe_selection``)."""
        if not self.keeps:
            return "the last epoch (the script keeps no test-selected checkpoint)"
        kept = "; ".join(f"{k.name}: best {k.metric}{' ' + k.direction if k.direction else ''}"
                         f" ({'first' if k.ties == 'first' else 'last'} of equal scores)" for k in self.keeps)
        return f"{kept}, on {test}, tested after epochs {_epochs(self.schedule(epochs))}"


def _epochs(epochs: list[int]) -> str:
    if not epochs:
        return "none (the last epoch is the only candidate)"
    if len(epochs) <= 4:
        return ", ".join(map(str, epochs))
    return f"{epochs[0]}, {epochs[1]}, ..., {epochs[-1]}"
