"""The shared base: a (two-stream) torchvision ResNet-50 and strict ImageNet weight loading.

AGW (mangye16/Cross-Modal-Re-ID-baseline) gives each modality its own stem (conv1, bn1,
relu, maxpool) and shares layer1-layer4. The official code builds three whole ResNet-50s
(~71.4M parameters) and uses parts of each (~24.4M); this module builds only the used
parts: one ResNet body plus one stem per modality (~23.5M + 9.5k).
IV-ReID and MCE share everything, including the stem (``shared_stem=True``).

Weights come from torchvision's real API (``ResNet50_Weights.IMAGENET1K_V1``, the weights the
official repositories download) or from a local ``weights_file`` in the plain torchvision
ResNet-50 state-dict layout. Loading is strict: any key mismatch is a :class:`WeightsError`.
``arch="resnet18"`` or ``"resnet34"`` swaps in a smaller torchvision ResNet (not a paper's
choice: for quick experiments and the CPU learning tests).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from .layers import NonLocal

# AGW's placement (official ``non_layers=[0, 2, 3, 0]`` for ``layers=[3, 4, 6, 3]``): a
# non-local block after each of the last k blocks of each stage, i.e. after layer2 blocks
# 2, 3 and layer3 blocks 3, 4, 5 (0-based).
AGW_NON_LOCAL_COUNTS: tuple[int, int, int, int] = (0, 2, 3, 0)

_LAYERS = ("layer1", "layer2", "layer3", "layer4")

# The papers all use ResNet-50. The smaller torchvision ResNets are offered for quick
# experiments (and the CPU learning tests): same stems, same stages, narrower maps.
ARCHS: dict[str, tuple] = {
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1, (256, 512, 1024, 2048)),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1, (64, 128, 256, 512)),
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, (64, 128, 256, 512)),
}


def out_channels(arch: str) -> int:
    """Channels of ``arch``'s layer4 map (2048 for ResNet-50, 512 for ResNet-18/34)."""
    return _arch(arch)[2][-1]


def _arch(arch: str) -> tuple:
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is not supported; use one of {sorted(ARCHS)} (the papers use 'resnet50').")
    return ARCHS[arch]
_SHOWN_KEYS = 5


class WeightsError(ValueError):
    """A weights file (or the ImageNet download) is missing, unreadable or does not match.

    The message names the file, the first offending keys and what to do about it.
    """


class ResNetStem(nn.Module):
    """ResNet's stem: conv1 (7x7, stride 2), bn1, relu, maxpool (3x3, stride 2): 1/4 resolution.

    ``relu=False`` leaves the ReLU out (an identity in its place), as the IV-ReID baseline's
    released ResNet-50 does (``model/resnet.py`` has it commented out).
    """

    def __init__(self, resnet: torchvision.models.ResNet, relu: bool = True) -> None:
        super().__init__()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu if relu else nn.Identity()
        self.maxpool = resnet.maxpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN_KEYS])
    more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return shown + more


def _short_error(err: Exception) -> str:
    """The informative line of a torch.load error (its weights-only advice is long and not ours to give)."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "no details"
    return line if len(line) <= 200 else line[:197] + "..."


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` state dict from ``path`` (weights-only unpickling, on the CPU)."""
    if not path.is_file():
        raise WeightsError(
            f"weights_file {str(path)!r} does not exist or is not a file; pass the path of a saved "
            "torchvision ResNet state dict (ResNet-50 for the papers)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt archives; all mean "unreadable"
        raise WeightsError(
            f"weights_file {str(path)!r} could not be read as a weights-only PyTorch state dict "
            f"({type(err).__name__}: {_short_error(err)}). Either the file is corrupt or truncated (download it "
            "again), or it is not a plain state dict: a whole pickled model (torch.save(model)) must be loaded "
            "once in a trusted environment and re-saved with torch.save(model.state_dict(), path)."
        ) from err
    flat = (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )
    if not flat:
        hint = ""
        if isinstance(obj, Mapping):
            nested = [str(k) for k, v in obj.items() if isinstance(v, Mapping)]
            if nested:
                hint = f" It holds nested dicts under {_first(nested)}: save that entry's state dict instead."
        raise WeightsError(
            f"weights_file {str(path)!r} holds a {type(obj).__name__}, not a flat state dict of named tensors "
            f"as written by torch.save(resnet.state_dict(), path).{hint}"
        )
    return dict(obj)


def is_imagenet_file(path: str | Path, arch: str = "resnet50") -> bool:
    """Whether ``path`` is torchvision's ImageNet file for ``arch``: its sha256 starts with the hash the download's
    name carries (``resnet50-0676ba61.pth``), the check torch.hub itself makes."""
    import hashlib

    expected = _arch(arch)[1].url.rsplit("-", 1)[-1].split(".")[0]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest().startswith(expected)


def _imagenet_state_dict(arch: str = "resnet50") -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``arch`` (IMAGENET1K_V1: for ResNet-50 the file the official repositories use)."""
    weights = _arch(arch)[1]
    try:
        return dict(weights.get_state_dict(progress=False))
    except (OSError, RuntimeError) as err:  # no network (URLError is an OSError) or a bad cached file
        raise WeightsError(
            f"could not fetch torchvision's {weights} ({type(err).__name__}: {err}). Without internet, put the "
            f"file {weights.url.rsplit('/', 1)[-1]!r} in the torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints), or pass weights_file=<path to a {arch} state dict>, "
            "or pretrained=False for random initialisation."
        ) from err


def check_resnet_state_dict(
    state: Mapping[str, torch.Tensor], reference: nn.Module, source: str, arch: str = "resnet50"
) -> dict[str, torch.Tensor]:
    """``state`` checked against a torchvision ResNet's (``reference``, an ``arch``) keys and shapes, ready to load.

    The ``fc.`` classifier head is dropped (the models here replace it). BatchNorm
    ``num_batches_tracked`` counters may be absent (torchvision's own ImageNet files predate
    them) and are filled from ``reference``. Any other missing or unexpected key, or a shape
    mismatch, raises :class:`WeightsError` naming ``source`` and the first offending keys.
    """
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    given = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        found = []
        if missing:
            found.append(f"{len(missing)} missing key(s): {_first(missing)}")
        if unexpected:
            found.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
        prefixes = {k.split(".", 1)[0] for k in unexpected}
        hint = ""
        if missing and len(prefixes) == 1 and len(unexpected) >= len(missing) // 2:
            hint = f" The unexpected keys share the prefix {next(iter(prefixes))!r}: strip it before saving."
        raise WeightsError(
            f"{source} does not match a torchvision {arch} ({'; '.join(found)}).{hint} Provide the plain "
            f"torchvision layout, i.e. torch.save(torchvision.models.{arch}(...).state_dict(), path) "
            "(an 'fc.' head is allowed and ignored)."
        )
    wrong = [k for k, v in expected.items() if k in given and tuple(given[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise WeightsError(
            f"{source} has {len(wrong)} tensor(s) of the wrong shape, first {k!r}: {tuple(given[k].shape)} "
            f"instead of {tuple(expected[k].shape)}. It is not a {arch} state dict; provide one (or set arch to match it)."
        )
    return {k: given.get(k, v) for k, v in expected.items()}


def load_resnet_weights(pretrained: bool, weights_file: str | Path | None, arch: str = "resnet50") -> dict[str, torch.Tensor] | None:
    """The state dict to start from: ``weights_file`` if given, else ``arch``'s ImageNet
    weights if ``pretrained``, else ``None`` (keep torchvision's random initialisation)."""
    if weights_file is not None:
        return _read_state_dict(Path(weights_file))
    if pretrained:
        return _imagenet_state_dict(arch)
    return None


def add_conv_biases(module: nn.Module) -> int:
    """Give every bias-free ``Conv2d`` under ``module`` a bias, initialised as PyTorch's default
    (uniform in +-1/sqrt(fan_in)); returns how many were added.

    The IV-ReID baseline's ResNet-50 builds every convolution with ``bias=True`` and loads
    ImageNet weights (which have no conv biases) around them, so its biases start at PyTorch's
    default. Each conv feeds a BatchNorm, so a bias never changes an output: in training the BN
    subtracts the batch mean, at test the running mean has absorbed it. They exist so that the
    parameters, the optimiser state and an official checkpoint line up tensor for tensor.
    """
    added = 0
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d) and conv.bias is None:
            fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
            bound = 1.0 / fan_in**0.5
            conv.bias = nn.Parameter(torch.empty(conv.out_channels).uniform_(-bound, bound))
            added += 1
    return added


def set_last_stride(resnet: torchvision.models.ResNet, last_stride: int) -> None:
    """Stride of layer4's first block (its conv2 and its downsample shortcut).

    ``last_stride=1`` (all papers here) keeps layer4 at 1/16 resolution: 18x9 maps for a
    288x144 input instead of 9x5, the re-ID trick from reid-strong-baseline.
    """
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}.")
    block = resnet.layer4[0]
    # Bottleneck (ResNet-50) strides in conv2, BasicBlock (ResNet-18/34) in conv1.
    strided = block.conv2 if isinstance(block, torchvision.models.resnet.Bottleneck) else block.conv1
    strided.stride = (last_stride, last_stride)
    if block.downsample is not None:
        block.downsample[0].stride = (last_stride, last_stride)


class TwoStreamResNet50(nn.Module):
    """ResNet-50 with modality-specific stems and shared layer1-layer4 (AGW's base).

    ``forward(visible, infrared)`` takes either or both ``[B, 3, H, W]`` batches. Each goes
    through its own stem (or the one shared stem); when both are given the stem outputs are
    concatenated as ``[visible; infrared]`` along the batch, so every shared BatchNorm sees
    both modalities in one batch, as in the official code. Returns the layer4 map
    ``[N, out_channels, H/16, W/16]`` (``H/32`` with ``last_stride=2``); ``out_channels`` is
    2048 for ResNet-50 (512 for ``arch="resnet18"``/``"resnet34"``).

    Both stems start from the same weights. ``non_local=True`` inserts AGW's non-local blocks
    (``non_local_counts`` per stage, after the last blocks of each stage); they are new,
    start as the identity and are not part of any weights file.

    Weights (``weights_file`` wins over ``pretrained``) are checked strictly against a plain
    torchvision ResNet-50, loaded into it, and its parts are then reused here, so the stems
    and layers hold exactly the file's tensors.

    ``stem_relu=False`` drops the stem's ReLU and ``conv_bias=True`` gives every convolution a
    bias (see :func:`add_conv_biases`): together they are the IV-ReID baseline's released
    ResNet-50. Both keep torchvision's network by default.
    """

    def __init__(
        self,
        pretrained: bool = True,
        weights_file: str | Path | None = None,
        last_stride: int = 1,
        non_local: bool = False,
        official_one_channel: bool = True,
        shared_stem: bool = False,
        non_local_counts: Sequence[int] | None = None,
        arch: str = "resnet50",
        stem_relu: bool = True,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        factory, _, stage_channels = _arch(arch)
        resnet = factory(weights=None)
        state = load_resnet_weights(pretrained, weights_file, arch)
        if state is not None:
            source = f"torchvision's {arch} IMAGENET1K_V1" if weights_file is None else f"weights_file {str(weights_file)!r}"
            checked = check_resnet_state_dict(state, resnet, source, arch)
            # Every key except the dropped fc head was checked above, so this is strict for all we keep.
            result = resnet.load_state_dict(checked, strict=False)
            assert not result.unexpected_keys and all(k.startswith("fc.") for k in result.missing_keys)
        set_last_stride(resnet, last_stride)
        if conv_bias:
            add_conv_biases(resnet)
        self.last_stride = last_stride
        self.shared_stem = shared_stem
        self.arch = arch
        self.stem_relu = stem_relu
        self.conv_bias = conv_bias
        self.out_channels = stage_channels[-1]

        if shared_stem:
            self.stem = ResNetStem(resnet, relu=stem_relu)
        else:
            self.visible_stem = ResNetStem(resnet, relu=stem_relu)
            # Same initial weights, separate parameters (the official visible and thermal
            # modules are two ResNets loaded from the same ImageNet file).
            self.infrared_stem = copy.deepcopy(self.visible_stem)
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        # resnet.avgpool and resnet.fc are not kept: each model brings its own pooling and head.

        self.non_local_blocks = nn.ModuleDict()
        if non_local:
            if non_local_counts is None:
                # AGW's placement; a smaller ResNet (2 blocks in layer3) gets as many as its stages hold.
                non_local_counts = [min(c, len(getattr(self, n))) for n, c in zip(_LAYERS, AGW_NON_LOCAL_COUNTS)]
            if len(non_local_counts) != 4:
                raise ValueError(f"non_local_counts needs one count per stage (4), got {tuple(non_local_counts)}.")
            for name, count, channels in zip(_LAYERS, non_local_counts, stage_channels):
                depth = len(getattr(self, name))
                if not 0 <= count <= depth:
                    raise ValueError(f"{name} has {depth} blocks; cannot place {count} non-local blocks after them.")
                for index in range(depth - count, depth):
                    self.non_local_blocks[f"{name}_{index}"] = NonLocal(
                        channels, official_one_channel=official_one_channel
                    )

    def stem_of(self, modality: str) -> ResNetStem:
        """The stem that ``modality`` ("visible" or "infrared") goes through."""
        if modality not in ("visible", "infrared"):
            raise ValueError(f"modality must be 'visible' or 'infrared', got {modality!r}.")
        if self.shared_stem:
            return self.stem
        return self.visible_stem if modality == "visible" else self.infrared_stem

    def stem_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the stem(s)."""
        if self.shared_stem:
            yield from self.stem.parameters()
        else:
            yield from self.visible_stem.parameters()
            yield from self.infrared_stem.parameters()

    def body_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the shared layer1-layer4 and of the non-local blocks."""
        for name in _LAYERS:
            yield from getattr(self, name).parameters()
        yield from self.non_local_blocks.parameters()

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None,
                until: str = "layer4") -> torch.Tensor:
        """The map after stage ``until`` (default the whole network; ``"layer3"`` for a model that runs
        its own copies of layer4 on it, as MITML does)."""
        if until not in _LAYERS:
            raise ValueError(f"until={until!r} is not a stage; use one of {_LAYERS}.")
        if visible is None and infrared is None:
            raise ValueError("TwoStreamResNet50.forward needs a visible or an infrared batch (both were None).")
        if self.shared_stem:
            # One stem for both: run it once on the concatenation, as a single shared ResNet
            # fed the whole batch does (IV-ReID, MCE), so its BN sees both modalities.
            x = self.stem(torch.cat([t for t in (visible, infrared) if t is not None], dim=0))
        else:
            parts = [self.visible_stem(visible)] if visible is not None else []
            if infrared is not None:
                parts.append(self.infrared_stem(infrared))
            x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        for name in _LAYERS[:_LAYERS.index(until) + 1]:
            for index, block in enumerate(getattr(self, name)):
                x = block(x)
                key = f"{name}_{index}"
                if key in self.non_local_blocks:
                    x = self.non_local_blocks[key](x)
        return x


def feature_map_size(height: int, width: int, last_stride: int = 1) -> tuple[int, int]:
    """(rows, cols) of the layer4 map for a ``height`` x ``width`` input: 18 x 9 at 288 x 144."""
    def conv(size: int, kernel: int, stride: int, padding: int) -> int:
        return (size + 2 * padding - kernel) // stride + 1

    sizes = []
    for size in (height, width):
        size = conv(conv(size, 7, 2, 3), 3, 2, 1)  # conv1, maxpool
        size = conv(conv(size, 3, 2, 1), 3, 2, 1)  # layer2, layer3
        sizes.append(conv(size, 3, last_stride, 1))  # layer4
    return sizes[0], sizes[1]
