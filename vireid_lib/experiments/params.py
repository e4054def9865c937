"""Notebook and command-line parameters: ``None`` means the paper's value, anything else is checked.

``0`` is a value, not "use the default": ``epochs=0`` or ``lr=0`` is an error naming the
parameter and its valid range, never a silent 100-epoch run. Every notebook accepts the
:data:`COMMON` parameters, and :func:`check_notebook_parameters` rejects a parameter a notebook
does not declare (papermill itself only warns and runs on).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

from .common import ExperimentError, check_folder

# The parameters every paper notebook takes (each adds its own).
COMMON = ("data_root", "epochs", "scale_schedule", "lr", "num_ids", "num_per_modality", "height", "width", "batches_per_epoch", "arch",
          "optimizer", "backbone_lr_factor", "pretrained", "weights_file", "checkpoint", "device", "amp", "channels_last", "augment",
          "compile_model", "seed",
          "workers", "eval_every", "selection", "score_untrained", "synthetic_ids", "resume", "out_dir", "results_dir")
AMP = ("off", "bf16", "fp16")


def paper_value(value, default):
    """``default`` when ``value`` is ``None``, else ``value`` (0 included)."""
    return default if value is None else value


def integer(name: str, value, minimum: int = 1, maximum: int | None = None, optional: bool = True):
    """``value`` as an int in ``minimum..maximum`` (``None`` passes when ``optional``); else an error naming ``name``."""
    if value is None and optional:
        return None
    valid = f"an integer >= {minimum}" if maximum is None else f"an integer in {minimum}..{maximum}"
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        hint = " (None means the paper's value)" if optional else ""
        raise ExperimentError(f"{name}={value!r} is invalid: it must be {valid}{hint}.")
    return value


def positive(name: str, value, optional: bool = True):
    """``value`` as a finite number > 0 (``None`` passes when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ExperimentError(f"{name}={value!r} is invalid: it must be a finite number > 0"
                              + (" (None means the paper's value)." if optional else "."))
    return float(value)


def choice(name: str, value, options: tuple, optional: bool = False):
    if value is None and optional:
        return None
    if value not in options:
        raise ExperimentError(f"{name}={value!r} is not one of {options}" + (" (or None for the paper's)." if optional else "."))
    return value


def flag(name: str, value, optional: bool = False):
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise ExperimentError(f"{name}={value!r} is invalid: use True or False" + (" (or None)." if optional else "."))
    return value


def check_notebook_parameters(namespace: dict) -> None:
    """Reject any parameter papermill injected that the notebook's parameters cell does not declare.

    Papermill runs the tagged cell, then a cell it writes (starting ``# Parameters``) assigning
    the given values; both are in IPython's input history (``In``). A name assigned in the
    injected cell but not in the declared one would be silently ignored, so it is an error. Run
    cell by cell in JupyterLab there is no injected cell, and nothing to check.
    """
    for name in ("out_dir", "results_dir"):  # a file there would only fail after training
        if isinstance(namespace.get(name), (str, Path)):
            check_folder(namespace[name], name)
    history = [cell for cell in namespace.get("In", []) if isinstance(cell, str)]
    injected = [i for i, cell in enumerate(history) if cell.lstrip().startswith("# Parameters")]
    if not injected or injected[-1] == 0:
        return
    given, declared = _assigned(history[injected[-1]]), _assigned(history[injected[-1] - 1])
    unknown = sorted(given - declared)
    if unknown:
        raise ExperimentError(f"unknown parameter(s) {', '.join(unknown)} for this notebook; it takes: "
                              f"{', '.join(sorted(declared))}. Check the spelling (papermill only warns and runs on).")


def _assigned(source: str) -> set[str]:
    try:
        tree = ast.parse(re.sub(r"^\s*[%!].*$", "", source, flags=re.M))
    except SyntaxError:
        return set()
    return {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
            if isinstance(target, ast.Name)}


# The runner's own parameters, the same for every paper: name -> checker(name, value). A recipe field (``epochs``,
# ``lr``, ``dc_weight``, ...) is checked by its recipe instead (vireid_lib.interface.Recipe.check), so a new paper's
# parameters are checked without an entry here; the selection rule's fields are general and listed here.
RULES = {
    "trial": lambda n, v: integer(n, v, 1, 10, optional=False),
    "batches_per_epoch": integer,
    "eval_every": lambda n, v: integer(n, v, 0), "eval_first": lambda n, v: integer(n, v, 0),
    "selection_trials": lambda n, v: integer(n, v, 1, 10),
    "eval_trials": lambda n, v: integer(n, v, 1, 10, optional=False),
    "synthetic_ids": lambda n, v: integer(n, v, 4),
    "workers": lambda n, v: integer(n, v, 0, optional=False),
    "amp": lambda n, v: choice(n, v, AMP),
    "augment": lambda n, v: choice(n, v, ("auto", "loader", "device")), "compile_model": flag,
    "pretrained": flag, "resume": flag, "progress": flag, "score_untrained": flag, "channels_last": flag,
    "cross_dataset": flag,
}


def _bad(name: str, value, valid: str):
    raise ExperimentError(f"{name}={value!r} is invalid: it must be {valid}.")


def check_parameters(values: dict) -> None:
    """Check every parameter in ``values`` that :data:`RULES` knows (a recipe field is checked by its recipe when the
    runner applies it: :func:`vireid_lib.experiments.runner.resolve_recipe`)."""
    for name, value in values.items():
        if name in RULES:
            RULES[name](name, value)


def check_amp(amp: str, device: str) -> None:
    """Mixed precision runs on CUDA only; asking for it elsewhere is an error rather than a silent fp32 run."""
    if amp != "off" and not device.startswith("cuda"):
        raise ExperimentError(f"amp={amp!r} needs a CUDA device, but the run is on {device!r}: use amp='off' on the "
                              "CPU (the record would otherwise claim a precision that never ran).")
