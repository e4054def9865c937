"""Notebook and command-line parameters: ``None`` means the paper's value, anything else is checked.

``0`` is a value, not "use the default": ``epochs=0`` or ``lr=0`` is an error naming the
parameter and its valid range, never a silent 100-epoch run. Every notebook accepts the
:data:`SHARED` parameters, and :func:`check_notebook_parameters` rejects a parameter a notebook
does not declare (papermill itself only warns and runs on).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

from .common import ExperimentError, check_folder

# The parameters every paper notebook takes, declared once here with their defaults and meaning (a notebook's
# parameters cell holds only its own: its dataset, lr and the paper's switches). Papermill's ``-p`` sets any of them;
# :func:`parameters` hands them to ``prepare``. Recipe fields among them (epochs, arch, ...) default to the paper's.
SHARED: dict[str, tuple[object, str]] = {
    "data_root": ("", "empty: the bundled synthetic twin, generated on first use (NOT a reproduction)"),
    "trial": (1, "RegDB trial 1..10: every trial is a separately trained model"),
    "epochs": (None, "None: the paper's"),
    "scale_schedule": (False, "other epochs than the paper's keep its warm-up and lr steps; True scales them"),
    "num_ids": (None, "identities per batch; None: the paper's"),
    "num_per_modality": (None, "images (tracklets) per identity and modality; None: the paper's"),
    "height": (None, "None: the paper's input height"),
    "width": (None, "None: the paper's input width"),
    "batches_per_epoch": (None, "None: the official epoch length; a small number only for smoke runs"),
    "arch": (None, "None: the paper's resnet50; resnet18 / resnet34 only for quick experiments"),
    "optimizer": (None, "None: the paper's; another one runs at a constant lr"),
    "backbone_lr_factor": (None, "None: the paper's"),
    "seed": (None, "None: the paper's"),
    "pretrained": (True, "torchvision's ImageNet weights (downloaded once)"),
    "weights_file": ("", "or a local ResNet state dict"),
    "checkpoint": ("", "evaluate these weights instead of training: a vireid checkpoint or the authors' file"),
    "cross_dataset": (False, "True: evaluate a checkpoint trained on other data on purpose (the record says so)"),
    "device": ("auto", '"auto", "cpu", "cuda", "cuda:1", ...'),
    "amp": ("off", '"off", "bf16" or "fp16" (CUDA only)'),
    "channels_last": (False, "image batches and weights in the channels-last layout"),
    "augment": ("auto", '"loader", "device" (whole uint8 batches on the GPU) or "auto" (device on CUDA)'),
    "compile_model": (False, "torch.compile the training steps"),
    "workers": (2, "DataLoader workers"),
    "eval_every": (None, "None: the official script's test schedule; 0: no test during training"),
    "selection": ("official", '"official": the checkpoint the paper\'s script keeps; "last": the last epoch only'),
    "eval_trials": (10, "SYSU-MM01 gallery trials to average (the papers use 10)"),
    "score_untrained": (False, "also score the model before training (the floor training must lift)"),
    "synthetic_ids": (None, "identities of the synthetic twin; None: the twin's default"),
    "resume": (True, "continue an interrupted run found in out_dir"),
    "out_dir": ("runs", "checkpoints, logs and figures"),
    "results_dir": ("results", "the run's result record"),
}
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
    given, declared = assigned_names(history[injected[-1]]), assigned_names(history[injected[-1] - 1])
    unknown = sorted(given - declared)
    if unknown:
        raise ExperimentError(f"unknown parameter(s) {', '.join(unknown)} for this notebook; it takes: "
                              f"{', '.join(sorted(declared))}. Check the spelling (papermill only warns and runs on).")


def parameters(namespace: dict | None = None, local: tuple[str, ...] = ()) -> dict:
    """The notebook's parameters, for ``prepare(method, **parameters())``: every name its parameters cell declares,
    every name papermill injected, and every :data:`SHARED` name the notebook's namespace holds, with the values it
    holds now (``namespace``: the caller's globals by default). Names in ``local`` are the notebook's own (used by
    its cells, not by ``prepare``). An injected name nothing takes is refused by ``prepare``, naming it.

    The parameters cell is found in IPython's input history (``In``): the first cell made only of assignments of
    literal values (the notebook's first cell; a later such cell is a scratch edit whose values count, not its
    names), papermill's injected cell (``# Parameters``) after it. The values are the namespace's now.
    """
    import sys

    namespace = sys._getframe(1).f_globals if namespace is None else namespace
    history = [cell for cell in namespace.get("In", []) if isinstance(cell, str)]
    literal = [i for i, cell in enumerate(history) if _only_literals(cell)]
    injected = [i for i in literal if history[i].lstrip().startswith("# Parameters")]
    declared = [i for i in literal if i not in injected]
    names: set[str] = set()
    if declared:  # the first such cell: the notebook's first; a later one (x = 1) is a scratch cell, not parameters
        names |= assigned_names(history[declared[0]])
    if injected and (not declared or injected[-1] > declared[-1]):
        names |= assigned_names(history[injected[-1]])
    names |= {name for name in SHARED if name in namespace}
    if not history:  # run outside IPython: every literal global
        names |= {k for k, v in namespace.items() if not k.startswith("_") and _is_literal_value(v)}
    return {name: namespace[name] for name in sorted(names - set(local)) if name in namespace}


def beside(values: dict, prefix: str, keep: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Split a notebook's parameters between its paper and a second paper it trains beside it (CST's MITML):
    ``(main, second)``, where names ``<prefix>_<field>`` go to the second paper as ``<field>``, and the second
    also gets every :data:`SHARED` value but the checkpoint (which holds the first paper's weights) and the names in
    ``keep``."""
    mark = f"{prefix}_"
    main = {k: v for k, v in values.items() if not k.startswith(mark)}
    second = {k: v for k, v in values.items()
              if (k in SHARED and k not in ("checkpoint", "cross_dataset")) or k in keep}
    second.update({k[len(mark):]: v for k, v in values.items() if k.startswith(mark)})
    return main, second


def _is_literal_value(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, Path)) or (
        isinstance(value, (tuple, list)) and all(_is_literal_value(v) for v in value))


def _only_literals(source: str) -> bool:
    try:
        tree = ast.parse(re.sub(r"^\s*[%!].*$", "", source, flags=re.M))
    except SyntaxError:
        return False
    if not tree.body:
        return False
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)):
            return False
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return False
    return True


def assigned_names(source: str) -> set[str]:
    """The names a cell's source assigns at its top level."""
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
