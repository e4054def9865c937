"""Checkpoints: written atomically, read without running code, loaded strictly.

Besides the workbook's own checkpoints, :func:`load_weights` takes plain state dicts and the
files the papers' authors released: AGW's ``.t`` files (weights under ``"net"`` beside NumPy
scores), and whole pickled models such as IV-ReID's ``torch.save(model)``, which are rebuilt
as inert module trees by a restricted unpickler that only ever constructs tensors, PyTorch
modules and plain containers (never a function of the authors' code). The paper's
:class:`~vireid_lib.models.official.OfficialLayout` then maps the names.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import shutil
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.official import OfficialLayout, OfficialWeightsError, apply_layout, strip_wrapper_prefix


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the model; the message says which."""


CHECKSUM = "checksum"  # the key under which a saved dict carries the digest of everything else it holds


def save_atomic(obj: object, path: Path | str) -> Path:
    """Write with ``torch.save`` to a temporary file beside ``path``, then rename it into place.

    A crash while writing leaves the previous file untouched: readers only ever see a
    complete checkpoint. A dict is saved with a digest of its contents (``"checksum"``), which
    :func:`load_checkpoint` verifies: a file damaged on disk later (zeroed blocks, a bad copy)
    is an error, never weights that silently differ. A full disk is a :class:`CheckpointError`
    that says so; the temporary file is removed and the previous checkpoint stays whole.
    """
    path = Path(path)
    _make_folder(path.parent, path)
    if isinstance(obj, dict):
        obj = {**{k: v for k, v in obj.items() if k != CHECKSUM}, CHECKSUM: content_digest(obj)}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        if not _disk_full(err, path.parent):
            raise
        free = shutil.disk_usage(path.parent).free
        raise CheckpointError(
            f"the disk is full: writing {path} failed with {free / 2**20:.0f} MiB free there ({err.__class__.__name__}). "
            f"{'The previous ' + path.name + ' is intact. ' if path.exists() else ''}Free some space (or write to "
            "another out_dir), then rerun: training resumes from the last checkpoint."
        ) from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _make_folder(folder: Path, path: Path) -> None:
    blocked = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise CheckpointError(f"cannot write {path}: {blocked} is a file, not a folder. Pass another out_dir.")
    folder.mkdir(parents=True, exist_ok=True)


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of space: ENOSPC, or torch's zip writer failing on a nearly full disk."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    message = str(err)
    if "No space left" in message:
        return True
    return "PytorchStreamWriter failed" in message and shutil.disk_usage(folder).free < 64 * 2**20


def content_digest(obj: object) -> str:
    """A sha256 of everything a checkpoint dict holds (tensors by dtype, shape and bytes; other values by their
    repr), in a fixed order; ``"checksum"`` itself is left out."""
    digest = hashlib.sha256()

    def visit(value: object) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            if tensor.numel():
                flat = tensor.reshape(-1)
                digest.update(flat.view(torch.uint8).numpy() if flat.element_size() == 1 else
                              flat.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()]).numpy())
        elif isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=str):
                if key != CHECKSUM:
                    digest.update(repr(key).encode())
                    visit(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[")
            for item in value:
                visit(item)
            digest.update(b"]")
        else:
            digest.update(repr(value).encode())

    visit(obj)
    return digest.hexdigest()


def _numpy_global(name: str) -> object:
    """NumPy's array/scalar reconstructors under the name a pickle gives them (numpy 1 or 2 paths)."""
    module, _, attr = name.rpartition(".")
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        core = getattr(np, "_core", None) or np.core
        return getattr(core.multiarray, attr)
    if module == "numpy.dtypes":
        return getattr(np.dtypes, attr)
    return getattr(np, attr)


# Globals a results-carrying checkpoint may reference besides tensors: NumPy arrays and scalars
# (AGW's .t files store their CMC curve and mAP as NumPy values).
_NUMPY_GLOBALS = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
                  "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.ndarray", "numpy.dtype"}


def _is_numpy_global(name: str) -> bool:
    return name in _NUMPY_GLOBALS or (name.startswith("numpy.dtypes.") and name.endswith("DType"))


class _AuthorsModule(nn.Module):
    """Stands in for a class of the authors' code while a whole pickled model is rebuilt."""

    official_class = "?"

    def __init__(self, *args, **kwargs) -> None:  # never called by unpickling; accepts anything
        super().__init__()

    def __repr__(self) -> str:
        return f"<{self.official_class}>"


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds tensors, PyTorch modules, NumPy values and plain containers, nothing else.

    A class from any other module (the authors' ``model.baseline.Baseline`` and its blocks)
    becomes an inert :class:`_AuthorsModule` holding the pickled parameters and buffers, so
    ``state_dict()`` works and none of the authors' code (which is not installed) is needed.
    """

    stubs: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        # Protocol-2 pickles (torch.save's) name Python 2 modules; pickle's own find_class maps them.
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
        qualified = f"{module}.{name}"
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "builtins" and name in ("set", "frozenset", "slice", "complex"):
            return {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex}[name]
        if (module, name) == ("_codecs", "encode"):  # NumPy scalars pickle their bytes through it
            import codecs

            return codecs.encode
        if _is_numpy_global(qualified):
            return _numpy_global(qualified)
        if module == "torch._utils" and name.startswith("_rebuild_"):
            return getattr(torch._utils, name)
        if module == "torch" and (name in ("Size", "device") or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        if (module, name) == ("torch.nn.parameter", "Parameter"):
            return nn.Parameter
        if module.startswith("torch.nn.modules."):
            found = getattr(__import__(module, fromlist=[name]), name, None)
            if isinstance(found, type) and issubclass(found, nn.Module):
                return found
        if module.startswith("torch.nn.backends"):  # torch < 1.4 pickled a backend object on every module
            return _AuthorsModule
        if not module.split(".")[0] in ("torch", "numpy", "builtins", "collections", "copyreg", "os", "sys",
                                        "subprocess", "posix", "nt", "functools", "operator", "importlib", "io", "_codecs",
                                        "codecs", "shutil", "pickle", "types"):
            stub = self.stubs.get((module, name))
            if stub is None:
                stub = type(name, (_AuthorsModule,), {"official_class": qualified})
                self.stubs[(module, name)] = stub
            return stub
        raise pickle.UnpicklingError(f"the file refers to {qualified}, which a checkpoint never needs")


class _RestrictedPickle:
    """The ``pickle_module`` handed to ``torch.load`` for whole pickled models."""

    Unpickler = _RestrictedUnpickler
    load = staticmethod(lambda file, **kwargs: _RestrictedUnpickler(file, **kwargs).load())
    __name__ = "vireid_restricted_pickle"


def _truncated(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04" and not zipfile.is_zipfile(path)


def _describe_file(path: Path) -> str:
    head = path.read_bytes()[:64]
    if zipfile.is_zipfile(path):
        return "a zip archive that is not a whole PyTorch file"
    if head.startswith(b"PK\x03\x04"):  # a zip's first entry without its end: torch.save's format, cut short
        return ("the start of a PyTorch (zip) file whose end is missing: a truncated write or copy "
                f"({path.stat().st_size:,} bytes)")
    if head.startswith(b"\x80"):
        return "a Python pickle that PyTorch cannot read"
    try:
        text = head.decode("utf-8")
        return f"text ({text[:30].strip()!r} ...)" if text.strip() else "an empty or blank file"
    except UnicodeDecodeError:
        return "binary data of an unknown kind"


def read_torch_file(path: Path | str, what: str = "checkpoint") -> object:
    """Whatever ``path`` holds, read without executing code: tensors, dicts, NumPy values, or a
    whole pickled model rebuilt inertly. Any failure is a :class:`CheckpointError` saying what
    the file is and what to do (never torch's advice to set ``weights_only=False``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; check the path (or train first).")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes): an interrupted copy or download. Get the file again.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for files that are not its own
        # "Unsupported global": the file needs more than tensors (NumPy values, a whole model), which the
        # restricted unpickler below can rebuild; anything else means the file is not torch's at all.
        if not (isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err)):
            if _truncated(path) or zipfile.is_zipfile(path):
                state = "truncated" if _truncated(path) else "damaged (a zip archive PyTorch cannot read)"
                raise CheckpointError(
                    f"{what} {path} is {state}: it holds {_describe_file(path)} ({type(err).__name__}). Copy it again; "
                    "if it is a run's own checkpoint, delete it and rerun (resume=False / --no-resume starts over)."
                ) from err
            raise CheckpointError(
                f"{what} {path} is not a PyTorch file: it holds {_describe_file(path)} ({type(err).__name__}). "
                "Pass a file written by torch.save (a vireid checkpoint, a state dict, or the authors' released "
                "weights)."
            ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickle)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{what} {path} cannot be read safely: {err}. It is not weights, a state dict or a saved model; "
            "if you trust it, load it yourself and save only its state_dict()."
        ) from err
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{what} {path} is corrupt or truncated ({type(err).__name__}: {err}). Get the file again.") from err


def load_checkpoint(path: Path | str) -> dict:
    """A vireid checkpoint dict (``model``, ``optimizer``, ``epoch``, ``config``, ...), read without running code and
    checked against the digest it was saved with."""
    state = read_torch_file(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of states.")
    verify(state, path)
    return state


def verify(state: dict, path: Path | str) -> None:
    """A saved dict's contents against its ``"checksum"`` (files without one, written before checksums, pass)."""
    saved = state.get(CHECKSUM)
    if saved is not None and content_digest(state) != saved:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its contents no longer match the checksum it was saved with (a bad disk "
            "block, an interrupted copy). Do not use it: delete it and rerun to train that epoch again, or start over "
            "with resume=False (--no-resume).")


@dataclass
class LoadedWeights:
    """What :func:`load_weights` found in a file and how it went into the model."""

    path: str
    kind: str  # "vireid checkpoint", "state dict" or an official layout's name
    epoch: int | None = None  # 1-based epoch the weights were saved after, when the file says
    config: dict | None = None  # a vireid checkpoint's training configuration
    stored_metrics: dict = field(default_factory=dict)  # scores the file itself carries (official .t files)
    notes: list[str] = field(default_factory=list)


def _flat_state(obj: object) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return dict(obj)
    return None


def _scalars(obj: dict, skip: str) -> dict:
    out = {}
    for key, value in obj.items():
        if key == skip:
            continue
        if isinstance(value, (int, float, np.floating, np.integer)):
            out[key] = float(value)
        elif isinstance(value, np.ndarray) and value.size and key.lower() == "cmc":
            out["R1"] = float(value.ravel()[0])
    return out


def load_weights(model: nn.Module, path: Path | str, layouts: Sequence[OfficialLayout] = (),
                 content: object = None) -> LoadedWeights:
    """Load ``path`` into ``model`` strictly, whatever form the weights come in.

    Accepted: a vireid checkpoint (``{"model": ..., "epoch": ..., "config": ...}``); a plain
    state dict in the model's own names; an official checkpoint in one of ``layouts`` (the
    paper's declared layouts), as a state dict, a dict holding one under ``"net"`` or
    ``"state_dict"``, or a whole pickled model. Anything else is a :class:`CheckpointError`
    that says what the file holds. ``content``: what :func:`read_torch_file` read from ``path``, when the caller
    has it already (so a large file is read once).
    """
    path = Path(path)
    obj = read_torch_file(path) if content is None else content  # content: the file, when the caller read it already
    if isinstance(obj, dict):
        verify(obj, path)
    if isinstance(obj, nn.Module):
        state, kind_hint, meta = obj.state_dict(), f"a whole pickled model ({getattr(obj, 'official_class', type(obj).__name__)})", {}
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "epoch" in obj:
        load_model_state(model, obj["model"], str(path))
        return LoadedWeights(str(path), "vireid checkpoint", epoch=int(obj["epoch"]) + 1, config=obj.get("config"),
                             stored_metrics=dict(obj.get("metrics") or {}))
    elif isinstance(obj, dict) and _flat_state(obj.get("net")) is not None:
        state, kind_hint, meta = obj["net"], "weights under 'net'", _scalars(obj, "net")
    elif isinstance(obj, dict) and _flat_state(obj.get("state_dict")) is not None:
        state, kind_hint, meta = obj["state_dict"], "weights under 'state_dict'", _scalars(obj, "state_dict")
    elif _flat_state(obj) is not None:
        state, kind_hint, meta = obj, "a state dict", {}
    else:
        held = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise CheckpointError(
            f"{path} holds {held}, not model weights. Pass a vireid checkpoint (runs/.../last.pt), a state dict, "
            "or the authors' released checkpoint."
        )
    state = strip_wrapper_prefix({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    epoch = int(meta["epoch"]) + 1 if "epoch" in meta else None
    if set(state) == set(model.state_dict()):
        load_model_state(model, state, str(path))
        return LoadedWeights(str(path), "state dict", epoch=epoch, stored_metrics=meta)
    for layout in layouts:
        if layout.identify(state.keys()):
            try:
                mapping = apply_layout(model, state, layout, str(path))
            except OfficialWeightsError as err:
                raise CheckpointError(str(err)) from err
            notes = [f"read {kind_hint}: {len(mapping.used)} official tensors mapped"
                     + (f", {len(mapping.unused)} never used by the official forward and left out" if mapping.unused else ""),
                     *mapping.notes, *(f"{k}: {why}" for k, why in _grouped(mapping.absent))]
            return LoadedWeights(str(path), layout.name, epoch=epoch, stored_metrics=meta, notes=notes)
    known = "; ".join(layout.name for layout in layouts) or "none are declared for this paper"
    try:
        load_model_state(model, state, str(path))  # the keys differ, so this names them
    except CheckpointError as err:
        raise CheckpointError(f"{err} Nor is it in an official layout this paper knows ({known}).") from None
    return LoadedWeights(str(path), "state dict", epoch=epoch, stored_metrics=meta)  # pragma: no cover


def _grouped(absent: dict[str, str]) -> list[tuple[str, str]]:
    """Absent keys grouped by their reason, each group named by its common prefix."""
    groups: dict[str, list[str]] = {}
    for key, why in absent.items():
        groups.setdefault(why, []).append(key)
    out = []
    for why, keys in groups.items():
        prefix = os.path.commonprefix(keys).rstrip(".")
        out.append((f"{prefix or keys[0]} ({len(keys)} tensors) kept as initialised", why))
    return out


def load_model_state(model: nn.Module, state_dict: dict, source: str) -> None:
    """Load strictly; any missing or unexpected key is an error that names the keys and the file."""
    own = set(model.state_dict())
    given = set(state_dict)
    missing, unexpected = sorted(own - given), sorted(given - own)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: missing keys {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}. "
            "It was saved from a different model or configuration (e.g. another number of classes or method); "
            "build the model with the checkpoint's configuration."
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # shapes differ
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {err}") from err


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
