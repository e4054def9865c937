"""Checkpoints released by the papers' authors, mapped onto the workbook's models.

An official checkpoint names its tensors after the authors' modules (``base_resnet.base.layer1``
for AGW, ``base.layer1`` for IV-ReID); each paper's model file declares an
:class:`OfficialLayout` that recognises those names and maps them onto its own model. Loading
stays strict: :func:`apply_layout` fails, naming the tensors, when an official tensor has no
place in the model (unless the layout says why it is not needed, e.g. the parts of the three
whole ResNets that AGW's code builds but never runs) or when a model tensor is not filled
(unless the layout says why the official file cannot hold it, e.g. IV-ReID's modality heads,
which its training script never saves and its test never uses).

This module knows no paper: the layouts live in the paper files.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

_SHOWN = 5


class OfficialWeightsError(ValueError):
    """An official checkpoint does not fit the model; the message names the tensors."""


@dataclass
class LayoutMapping:
    """What a layout made of an official state dict.

    ``state``: workbook key -> tensor. ``used``: the official keys that went into it.
    ``unused``: official key -> why the model does not need it. ``absent``: workbook key ->
    why the official file cannot hold it (those keep their initial values). ``notes``: what a
    reader should know about the conversion (shown in the notebook, stored in the record).
    """

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    unused: dict[str, str] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def take(self, official: str, workbook: str, tensor: torch.Tensor) -> None:
        self.state[workbook] = tensor
        self.used.add(official)


@dataclass(frozen=True)
class OfficialLayout:
    """One official repository's weight names and their mapping onto a workbook model."""

    name: str  # e.g. "AGW, mangye16/Cross-Modal-Re-ID-baseline"
    identify: Callable[[Collection[str]], bool]
    convert: Callable[[Mapping[str, torch.Tensor], nn.Module], LayoutMapping]


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def rename_prefixes(state: Mapping[str, torch.Tensor], rules: Sequence[tuple[str, str]], mapping: LayoutMapping) -> None:
    """Map every official key starting with a rule's prefix onto the workbook prefix (first rule wins)."""
    for key, tensor in state.items():
        for official, workbook in rules:
            if key.startswith(official):
                mapping.take(key, workbook + key[len(official):], tensor)
                break


def strip_wrapper_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` / DDP put on every key of a saved model."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def apply_layout(model: nn.Module, state: Mapping[str, torch.Tensor], layout: OfficialLayout, source: str) -> LayoutMapping:
    """Load ``state`` (official names) into ``model`` through ``layout``, strictly; returns the mapping."""
    mapping = layout.convert(state, model)
    leftover = sorted(set(state) - mapping.used - set(mapping.unused))
    if leftover:
        raise OfficialWeightsError(
            f"{source} ({layout.name}): {len(leftover)} official tensor(s) have no place in {type(model).__name__}: "
            f"{_first(leftover)}. The file may come from another variant of the official model; nothing was loaded."
        )
    own = model.state_dict()
    missing = sorted(k for k in own if k not in mapping.state and k not in mapping.absent)
    if missing:
        raise OfficialWeightsError(
            f"{source} ({layout.name}) leaves {len(missing)} tensor(s) of {type(model).__name__} unfilled: "
            f"{_first(missing)}. Build the model as the official one was built (same architecture and blocks)."
        )
    extra = sorted(set(mapping.state) - set(own))
    if extra:
        raise OfficialWeightsError(
            f"{source} ({layout.name}) maps onto tensors {type(model).__name__} does not have: {_first(extra)}. "
            "Build the model with the options the official checkpoint was trained with."
        )
    wrong = [k for k, v in mapping.state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        details = "; ".join(f"{k}: file {tuple(mapping.state[k].shape)}, model {tuple(own[k].shape)}" for k in wrong[:3])
        raise OfficialWeightsError(
            f"{source} ({layout.name}): {len(wrong)} tensor(s) differ in shape ({details}). A classifier row count "
            "that differs means the checkpoint was trained with another number of identities (dataset); other "
            "shapes mean another architecture or block width."
        )
    model.load_state_dict({k: mapping.state.get(k, v) for k, v in own.items()}, strict=True)
    return mapping


# ---------------------------------------------------------------------------------------------
# Cross-Modal-Re-ID-baseline's ``embed_net`` (AGW's and CAJ's code, and the code built on it: MITML's, CST's)
# ---------------------------------------------------------------------------------------------

# Official module -> workbook module. The official ``embed_net`` holds three whole ResNet-50s:
# the visible and thermal stems come from the first two, layers 1-4 from the third. Code built on
# Cross-Modal-Re-ID-baseline keeps these names (MITML's, through DDAG), so :func:`map_embed_net` serves it too.
EMBED_NET_PREFIXES = (
    ("visible_module.visible.conv1.", "backbone.visible_stem.conv1."),
    ("visible_module.visible.bn1.", "backbone.visible_stem.bn1."),
    ("thermal_module.thermal.conv1.", "backbone.infrared_stem.conv1."),
    ("thermal_module.thermal.bn1.", "backbone.infrared_stem.bn1."),
    *((f"base_resnet.base.layer{i}.", f"backbone.layer{i}.") for i in range(1, 5)),
    ("bottleneck.", "neck.bn."),
    ("classifier.", "neck.classifier."),
)
# Inside an official ``Non_local``: g and W are one-conv / conv+BN Sequentials.
_NON_LOCAL_PARTS = (("g.0.", "g."), ("theta.", "theta."), ("phi.", "phi."), ("W.0.", "out_conv."), ("W.1.", "out_bn."))
_NEVER_USED = ("built by the official embed_net (three whole ResNet-50s) but never run by its forward")
_WHOLE_RESNETS = ("visible_module.", "thermal_module.", "base_resnet.")


def map_embed_net(state: Mapping[str, torch.Tensor], model: nn.Module, mapping: LayoutMapping) -> None:
    """Map Cross-Modal-Re-ID-baseline's ``embed_net`` names in ``state`` onto ``model`` (a
    :class:`TwoStreamResNet50` backbone and a :class:`BNNeck`): the two stems, layers 1-4, the
    ``NL_k`` non-local blocks and the BNNeck. Every other tensor of the three whole ResNet-50s is
    named unused; a paper whose code adds modules under them (MITML's ``base_resnet.layer4`` copy)
    maps those into ``mapping`` first."""
    rename_prefixes(state, EMBED_NET_PREFIXES, mapping)
    for stage in range(1, 5):
        # Official NL_k holds count blocks placed after the last `count` blocks of layer k, in order;
        # the workbook keys each block by the index of the residual block it follows.
        names = {k.split(".")[1] for k in state if k.startswith(f"NL_{stage}.")}
        depth = len(getattr(model.backbone, f"layer{stage}"))
        for position in sorted(names, key=int):
            after = depth - len(names) + int(position)
            prefix = f"NL_{stage}.{position}."
            for key in (k for k in state if k.startswith(prefix)):
                rest = key[len(prefix):]
                for official, workbook in _NON_LOCAL_PARTS:
                    if rest.startswith(official):
                        mapping.take(key, f"backbone.non_local_blocks.layer{stage}_{after}.{workbook}{rest[len(official):]}",
                                     state[key])
    for key in state:
        if key not in mapping.used and key.startswith(_WHOLE_RESNETS):
            mapping.unused[key] = _NEVER_USED


def is_embed_net(keys) -> bool:
    """Whether a state dict's ``keys`` are Cross-Modal-Re-ID-baseline's ``embed_net`` (two stems, the shared layers)."""
    return "visible_module.visible.conv1.weight" in keys and "base_resnet.base.layer1.0.conv1.weight" in keys
