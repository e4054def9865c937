"""Train and test transforms for person images, built from a :class:`TransformConfig`.

Accepted inputs (see :func:`to_uint8_chw`):

* a PIL image (converted to RGB if it is not already, since some infrared sets store
  single-channel files),
* an ``H x W x 3`` ``uint8`` numpy array (training images are usually pre-resized arrays read
  from a cache),
* a ``3 x H x W`` ``uint8`` torch tensor, which is what ``torchvision.io.decode_jpeg`` returns,
  so a video loader can decode frames straight into tensors without going through PIL.

Outputs are ``float32`` tensors ``3 x height x width`` normalised with the ImageNet mean/std.

The standard train pipeline reproduces the one shared by AGW (Ye et al., TPAMI 2021), CAJ
(Ye et al., ICCV 2021) and MITML (Lin et al., CVPR 2022)::

    Pad(10) -> RandomCrop((288, 144)) -> RandomHorizontalFlip(0.5) -> ToTensor -> Normalize

Resizing to ``height x width`` happens first and is skipped when the input already has that
size. That matches both the image recipes, which resize once (PIL LANCZOS) when the SYSU-MM01 /
RegDB cache is built and then run the pipeline above, and pipelines that put a Resize at the
head of the transform. Geometry (resize, pad, crop, flip) runs on ``uint8`` tensors and
normalisation is fused into one multiply-subtract, which keeps a 288 x 144 frame well under a
millisecond on one CPU thread.

Randomness: every random draw uses torch's global RNG. Transforms run inside DataLoader
workers and PyTorch seeds each worker's torch RNG differently (``base_seed + worker_id``), so
workers do not repeat each other's augmentations; seed the main process with
``torch.manual_seed`` for reproducible runs. Transform objects hold no generator of their own
because a generator stored on the object would be copied into every worker with the *same*
state and all workers would then draw identical crops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .errors import DatasetError
from .records import INFRARED, VISIBLE

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# reid-strong-baseline (Luo et al., CVPRW 2019), torchreid and CAJ's ChannelRandomErasing all
# write these constants into the *normalised* tensor. They are the CIFAR-10 channel means that
# the original Random Erasing code (Zhong et al., AAAI 2020) carried over; in normalised space
# they are not the image mean (that would be 0), but they are what every official VI-ReID
# recipe uses, so they are the default here. Pass (0.0, 0.0, 0.0) to fill with the ImageNet
# mean instead.
REID_ERASING_FILL: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)

INTERPOLATIONS: dict[str, InterpolationMode] = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
    # Lanczos is what the official SYSU-MM01 / RegDB preprocessing uses (PIL's ANTIALIAS,
    # i.e. LANCZOS); torch has no tensor Lanczos kernel, so this one goes through PIL and is
    # several times slower. It only matters for inputs that are not pre-resized.
    "lanczos": InterpolationMode.LANCZOS,
}


@dataclass(frozen=True)
class TransformConfig:
    """Settings for the train and test transforms.

    Attributes:
        height, width: output size in pixels (AGW/CAJ/MITML use 288 x 144).
        pad: zero padding on every side before the random crop back to ``height x width``;
            0 disables pad-and-crop.
        flip: random horizontal flip with probability 0.5.
        random_erasing: probability of standard random erasing (area 0.02-0.4, aspect
            0.3-3.33) on the normalised tensor; 0 disables it (AGW/CAJ/MITML do not use it).
        erasing_fill: per-channel values written into erased rectangles, by both standard
            random erasing and CAJ's channel random erasing; see ``REID_ERASING_FILL``.
        caj_erasing: probability of ChannelRandomErasing in the views that use it (CAJ's 0.5; the views
            themselves, channel steps included, are named by a paper's batch layout: :data:`VIEWS`).
        interpolation: resize kernel, one of ``INTERPOLATIONS``.
        mean, std: normalisation constants (ImageNet by default).
    """

    height: int = 288
    width: int = 144
    pad: int = 10
    flip: bool = True
    random_erasing: float = 0.0
    erasing_fill: tuple[float, float, float] = REID_ERASING_FILL
    caj_erasing: float = 0.5
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise DatasetError(
                    f"TransformConfig.{name}={value!r} is invalid: it must be a positive integer "
                    f"number of pixels (e.g. height=288, width=144)."
                )
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise DatasetError(
                f"TransformConfig.pad={self.pad!r} is invalid: it must be an integer >= 0 "
                f"(0 disables pad-and-random-crop)."
            )
        if not isinstance(self.flip, bool):
            raise DatasetError(f"TransformConfig.flip={self.flip!r} is invalid: use True or False.")
        for name in ("random_erasing", "caj_erasing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise DatasetError(
                    f"TransformConfig.{name}={value!r} is invalid: it is a probability and must "
                    f"lie in [0, 1]."
                )
        if self.interpolation not in INTERPOLATIONS:
            raise DatasetError(
                f"TransformConfig.interpolation={self.interpolation!r} is unknown; valid values "
                f"are {', '.join(repr(i) for i in INTERPOLATIONS)}."
            )
        for name in ("erasing_fill", "mean", "std"):
            value = getattr(self, name)
            try:
                ok = len(value) == 3 and all(math.isfinite(float(v)) for v in value)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise DatasetError(
                    f"TransformConfig.{name}={value!r} is invalid: it must be three finite "
                    f"numbers, one per RGB channel."
                )
        if any(float(s) <= 0.0 for s in self.std):
            raise DatasetError(
                f"TransformConfig.std={self.std!r} is invalid: every channel's std must be > 0."
            )


# ----------------------------------------------------------------------------------------------
# Input conversion and the deterministic building blocks
# ----------------------------------------------------------------------------------------------


def to_uint8_chw(image: ImageLike) -> torch.Tensor:
    """Convert a PIL image, ``HxWx3`` uint8 array or ``3xHxW`` uint8 tensor to a ``3xHxW`` uint8 tensor.

    Arrays and tensors are not copied when they are already contiguous and writable, so the
    caller must not rely on the result being independent of the input (every transform here
    produces a new tensor before writing).
    """
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            image = image.convert("RGB")
        # np.array (not asarray) because PIL's buffer is read-only and torch.from_numpy warns
        # on non-writable arrays.
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DatasetError(
                f"image array has dtype {image.dtype} and shape {image.shape}; expected an "
                f"H x W x 3 uint8 RGB array (convert with arr.astype(np.uint8) or pass a PIL image)."
            )
        if not image.flags.writeable:
            image = image.copy()
        return torch.from_numpy(image).permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise DatasetError(
                f"image tensor has dtype {image.dtype} and shape {tuple(image.shape)}; expected a "
                f"3 x H x W uint8 tensor as returned by torchvision.io.decode_jpeg(mode=RGB)."
            )
        return image
    raise DatasetError(
        f"unsupported image type {type(image).__name__}; pass a PIL image, an H x W x 3 uint8 "
        f"numpy array or a 3 x H x W uint8 torch tensor."
    )


class Resize:
    """Resize a ``3xHxW`` uint8 tensor to ``height x width``; a no-op when already that size."""

    def __init__(self, height: int, width: int, interpolation: str = "bilinear") -> None:
        self.size = (height, width)
        self.interpolation = interpolation
        self._mode = INTERPOLATIONS[interpolation]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if tuple(img.shape[-2:]) == self.size:
            return img
        if self.interpolation == "lanczos":
            pil = Image.fromarray(img.permute(1, 2, 0).numpy())
            pil = pil.resize((self.size[1], self.size[0]), Image.Resampling.LANCZOS)
            return torch.from_numpy(np.array(pil, dtype=np.uint8)).permute(2, 0, 1)
        # antialias=True matches PIL's resize (and therefore the official PIL pipelines) when
        # downscaling; torchvision has a fast uint8 path for bilinear.
        return TF.resize(img, list(self.size), interpolation=self._mode, antialias=True)


class Normalize:
    """uint8 ``3xHxW`` -> float32, ``(x / 255 - mean) / std`` per channel (ToTensor + Normalize)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        std_t = torch.tensor([float(s) for s in std], dtype=torch.float32)
        mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32)
        # Fold the /255 and the division by std into one scale so normalising is a single
        # multiply and a single subtract on the float tensor.
        self._scale = (1.0 / (255.0 * std_t)).view(3, 1, 1)
        self._shift = (mean_t / std_t).view(3, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        # Geometry ran on the HWC-strided view of the decoded image (no layout copy); this
        # single copy_ converts dtype and layout together into a contiguous CHW float tensor.
        # (img.to(float32) would keep the HWC strides and make the broadcast ops ~5x slower.)
        out = torch.empty(img.shape, dtype=torch.float32)
        out.copy_(img)
        out.mul_(self._scale).sub_(self._shift)
        return out

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """A uint8 ``[..., 3, H, W]`` batch (or clip batch) normalised where it lies, with the same constants
        and operations as one image, so the values are the per-image ones: the loader can hand over uint8 and
        the run's device normalise (``vireid_lib.data.batched``, the extractor)."""
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
        out.copy_(images)  # layout and dtype in one copy, e.g. from a permuted HWC view
        return out.mul_(self._scale.to(images.device)).sub_(self._shift.to(images.device))


# ----------------------------------------------------------------------------------------------
# Random geometric transforms (uint8 tensors)
# ----------------------------------------------------------------------------------------------


def _uniform() -> float:
    # One draw from torch's (per-worker) RNG as a Python float; .item() on a 1-element tensor
    # is several times cheaper than comparing a 0-d tensor.
    return torch.rand(1).item()


class PadRandomCrop:
    """Zero-pad ``pad`` pixels on every side, then randomly crop back to the input size.

    Equivalent to torchvision's ``Pad(pad)`` + ``RandomCrop((H, W))`` as used by AGW/CAJ/MITML
    (crop offsets uniform over the ``2*pad + 1`` positions per axis, padding value 0 before
    normalisation), but done by copying the overlapping window into a zero tensor so the padded
    image is never materialised. The result is a contiguous ``CxHxW`` tensor, so this copy also
    does the HWC -> CHW layout change of array inputs at uint8 width, where it is cheapest.
    """

    def __init__(self, pad: int, fill: int = 0) -> None:
        self.pad = pad
        self.fill = fill  # the uint8 value of the padded border (torchvision's Pad(fill=...))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.pad == 0:
            return img
        c, h, w = img.shape
        offsets = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
        # Shift of the crop window relative to the unpadded image, in [-pad, pad].
        dy = offsets[0] - self.pad
        dx = offsets[1] - self.pad
        out = torch.full((c, h, w), self.fill, dtype=img.dtype)
        src_y0, src_y1 = max(0, dy), min(h, h + dy)
        src_x0, src_x1 = max(0, dx), min(w, w + dx)
        if src_y1 > src_y0 and src_x1 > src_x0:
            out[:, src_y0 - dy : src_y1 - dy, src_x0 - dx : src_x1 - dx] = img[
                :, src_y0:src_y1, src_x0:src_x1
            ]
        return out


class RandomHorizontalFlip:
    """Flip left-right with probability ``p`` (0.5 in every official VI-ReID recipe)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if _uniform() < self.p:
            return img.flip(-1)
        return img


# ----------------------------------------------------------------------------------------------
# Random erasing and CAJ channel augmentations (normalised float tensors)
# ----------------------------------------------------------------------------------------------


def _sample_erase_box(
    height: int, width: int, area: tuple[float, float], aspect: tuple[float, float], attempts: int = 100
) -> tuple[int, int, int, int] | None:
    """Draw an erasing rectangle the way reid-strong-baseline's RandomErasing does.

    Target area uniform in ``area`` (fraction of the image), aspect ratio uniform (linearly, not
    log-uniform as in torchvision) in ``aspect``, ``h = round(sqrt(a * r))``,
    ``w = round(sqrt(a / r))``, accepted if strictly smaller than the image; up to 100 tries,
    giving up (no erasing) if all fail. Returns ``(top, left, h, w)`` or ``None``.
    """
    for _ in range(attempts):
        u_area, u_ratio, u_top, u_left = torch.rand(4).tolist()
        target = (area[0] + (area[1] - area[0]) * u_area) * height * width
        ratio = aspect[0] + (aspect[1] - aspect[0]) * u_ratio
        h = int(round(math.sqrt(target * ratio)))
        w = int(round(math.sqrt(target / ratio)))
        if 0 < h < height and 0 < w < width:
            # Official code uses randint(0, H - h) inclusive, i.e. H - h + 1 positions.
            top = min(int(u_top * (height - h + 1)), height - h)
            left = min(int(u_left * (width - w + 1)), width - w)
            return top, left, h, w
    return None


class RandomErasing:
    """Random erasing (Zhong et al., AAAI 2020) as implemented in reid-strong-baseline.

    With probability ``p`` one rectangle (area ``sl``-``sh`` of the image, aspect ``r1``-``1/r1``)
    of the normalised ``CxHxW`` tensor is overwritten with the per-channel constants ``fill``.
    With ``inplace=False`` (default) the input is never modified; the built pipelines pass
    ``inplace=True`` because they only ever hand it a tensor they just created.
    """

    def __init__(
        self,
        p: float = 0.5,
        fill: Sequence[float] = REID_ERASING_FILL,
        sl: float = 0.02,
        sh: float = 0.4,
        r1: float = 0.3,
        inplace: bool = False,
    ) -> None:
        self.p = p
        self.fill = tuple(float(v) for v in fill)
        self.area = (sl, sh)
        self.aspect = (r1, 1.0 / r1)
        self.inplace = inplace

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.p <= 0.0 or _uniform() >= self.p:
            return tensor
        box = _sample_erase_box(tensor.shape[-2], tensor.shape[-1], self.area, self.aspect)
        if box is None:
            return tensor
        top, left, h, w = box
        out = tensor if self.inplace else tensor.clone()
        for c in range(out.shape[0]):
            out[c, top : top + h, left : left + w] = self.fill[c]
        return out


class ChannelRandomErasing(RandomErasing):
    """CAJ's ChannelRandomErasing (Ye et al., ICCV 2021): random erasing, default p = 0.5.

    The official class is reid-strong-baseline's RandomErasing with each channel filled by its
    own constant (0.4914, 0.4822, 0.4465), which is exactly :class:`RandomErasing`; it is kept
    as a separate name so pipelines read like the paper.
    """


def _replicate_channel(tensor: torch.Tensor, idx: int, inplace: bool) -> torch.Tensor:
    if not inplace:
        return tensor[idx : idx + 1].expand(3, -1, -1).clone()
    for c in range(3):
        if c != idx:
            tensor[c] = tensor[idx]
    return tensor


class ChannelExchange:
    """CAJ's ChannelExchange for visible images: copy one of R, G, B (each p = 1/3) into all channels.

    Acts on the normalised tensor, as in the official pipeline where it follows Normalize, so
    the replicated channel keeps its own channel's normalisation. ``inplace`` as in
    :class:`RandomErasing`.
    """

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = inplace

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return _replicate_channel(tensor, torch.randint(0, 3, (1,)).item(), self.inplace)


class ChannelAdaptiveGray:
    """CAJ's ChannelAdapGray for infrared images.

    Draws one of four cases uniformly: replicate R, G or B into all channels (1/4 each), or
    the fourth case, which converts to grayscale ``0.2989 R + 0.587 G + 0.114 B`` replicated
    with probability ``gray_p`` and otherwise leaves the image unchanged. With the official
    ``gray_p = 0.5`` that is 1/4, 1/4, 1/4, 1/8 gray, 1/8 unchanged. Operates on the normalised
    tensor like the official code. ``inplace`` as in :class:`RandomErasing`.
    """

    def __init__(self, gray_p: float = 0.5, inplace: bool = False) -> None:
        self.gray_p = gray_p
        self.inplace = inplace

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        idx = torch.randint(0, 4, (1,)).item()
        if idx < 3:
            return _replicate_channel(tensor, idx, self.inplace)
        if _uniform() < self.gray_p:
            gray = 0.2989 * tensor[0] + 0.587 * tensor[1] + 0.114 * tensor[2]
            out = tensor if self.inplace else torch.empty_like(tensor)
            out[:] = gray
            return out
        return tensor


# ----------------------------------------------------------------------------------------------
# Pipelines
# ----------------------------------------------------------------------------------------------


class Compose:
    """Apply callables in order (a tiny stand-in for torchvision's Compose, picklable for workers)."""

    def __init__(self, steps: Sequence[Callable]) -> None:
        self.steps = list(steps)

    def __call__(self, image: ImageLike) -> torch.Tensor:
        out = image
        for step in self.steps:
            out = step(out)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(getattr(s, "__name__", type(s).__name__) for s in self.steps)
        return f"Compose([{inner}])"


class MultiView:
    """Apply each pipeline to the image and return the tuple of results. A view whose entry in ``chained`` is true
    takes the previous view's output instead of the image (CST's second visible view, made from the first)."""

    def __init__(self, views: Sequence[Callable[[ImageLike], torch.Tensor]], chained: Sequence[bool] = ()) -> None:
        self.views = list(views)
        self.chained = list(chained) or [False] * len(self.views)
        if len(self.chained) != len(self.views) or self.chained[0]:
            raise DatasetError("MultiView: one chained flag per view, and the first view takes the image.")

    def __call__(self, image: ImageLike) -> tuple[torch.Tensor, ...]:
        outs: list[torch.Tensor] = []
        for view, chained in zip(self.views, self.chained):
            outs.append(view(outs[-1] if chained else image))
        return tuple(outs)


def wrap_to_uint8(tensor: torch.Tensor) -> torch.Tensor:
    """A normalised float ``3 x H x W`` tensor as torchvision's ``ToPILImage`` turns it into an image:
    ``mul(255)`` then a cast to bytes, which truncates toward zero and wraps modulo 256 (measured on torch's CPU
    cast: -1.0 -> 1, -0.5 -> 129, 1.5 -> 126). What CST's second visible view starts from (its ``transform_color1``
    is applied to the first view's normalised output); the values are scrambled, not clipped."""
    if not tensor.is_floating_point() or tensor.ndim != 3:
        raise DatasetError(f"wrap_to_uint8 takes a float 3 x H x W tensor, got {tensor.dtype} {tuple(tensor.shape)}.")
    return torch.remainder((tensor * 255).to(torch.int64), 256).to(torch.uint8)


def _standard_train_steps(cfg: TransformConfig, pad_fill: int = 0) -> list[Callable]:
    steps: list[Callable] = [to_uint8_chw, Resize(cfg.height, cfg.width, cfg.interpolation)]
    if cfg.pad > 0:
        steps.append(PadRandomCrop(cfg.pad, pad_fill))
    if cfg.flip:
        steps.append(RandomHorizontalFlip(0.5))
    steps.append(Normalize(cfg.mean, cfg.std))
    if cfg.random_erasing > 0.0:
        steps.append(RandomErasing(cfg.random_erasing, cfg.erasing_fill, inplace=True))
    return steps


def _check_modality(modality: int) -> None:
    if modality not in (VISIBLE, INFRARED):
        raise DatasetError(
            f"modality={modality!r} is unknown; use vireid_lib.data.records.VISIBLE ({VISIBLE}) "
            f"or INFRARED ({INFRARED})."
        )


def build_train_transform(cfg: TransformConfig, modality: int) -> Callable[[ImageLike], torch.Tensor]:
    """The paper's standard train transform (the ``"train"`` view), the same for both modalities: resize -> pad +
    random crop -> flip -> normalise -> (random erasing); one ``3xHxW`` tensor. Every other view, CAJ's channel
    augmentations included, is named in :data:`VIEWS` and built by :func:`build_views`."""
    _check_modality(modality)
    return Compose(_standard_train_steps(cfg))


def build_test_transform(cfg: TransformConfig) -> Callable[[ImageLike], torch.Tensor]:
    """Deterministic test transform: resize to ``height x width`` -> to float -> normalise."""
    return Compose(
        [to_uint8_chw, Resize(cfg.height, cfg.width, cfg.interpolation), Normalize(cfg.mean, cfg.std)]
    )


# Steps that do the same to every frame run once on the stacked clip: one resize and one
# normalisation per clip instead of one per frame is what keeps the video loader above
# 500 frames/s per worker. Random steps still run frame by frame.
_CLIP_WIDE_STEPS = (Resize, Normalize)


def _stack_channels_last(frames: list[torch.Tensor]) -> torch.Tensor:
    # Decoded frames are HWC in memory; stacking them as such and viewing the result as
    # S x C x H x W keeps torch's channels-last layout, on which the uint8 resize kernel runs
    # about 2.5x faster than on a contiguous NCHW copy. Frames that are already CHW (after a
    # crop) are stacked as they are: a transposing copy would cost more than it saves.
    if frames[0].permute(1, 2, 0).is_contiguous():
        return torch.stack([f.permute(1, 2, 0) for f in frames]).permute(0, 3, 1, 2)
    return torch.stack(frames)


def apply_per_frame(transform: Callable[[ImageLike], torch.Tensor], frames: Sequence[ImageLike]) -> torch.Tensor:
    """Apply ``transform`` to every frame independently and stack to ``S x C x H x W``.

    With a train transform every frame gets its own crop, flip and erasing draw, which is how
    MITML (Lin et al., CVPR 2022) augments HITSZ-VCM tracklets: its video dataset calls the
    image transform inside the loop over a tracklet's sampled frames. With :func:`build_test_transform` the result is
    deterministic. For a :class:`Compose` of this module's steps, the deterministic steps run
    once over the whole clip; the result is the same as transforming frame by frame.
    """
    if len(frames) == 0:
        raise DatasetError("apply_per_frame got an empty frame list; a tracklet needs at least one frame.")
    if isinstance(transform, Compose) and transform.steps and transform.steps[0] is to_uint8_chw:
        clip: torch.Tensor | list[torch.Tensor] = [to_uint8_chw(frame) for frame in frames]
        if len({tuple(f.shape) for f in clip}) == 1:
            for step in transform.steps[1:]:
                if isinstance(step, _CLIP_WIDE_STEPS):
                    clip = step(_stack_channels_last(clip) if isinstance(clip, list) else clip)
                else:
                    clip = [step(frame) for frame in clip]
            return torch.stack(clip) if isinstance(clip, list) else clip
    outs = [transform(frame) for frame in frames]
    if isinstance(outs[0], tuple) and all(isinstance(o, torch.Tensor) for o in outs[0]):
        return tuple(torch.stack(view) for view in zip(*outs))  # a multi-view transform: one clip per view
    if not isinstance(outs[0], torch.Tensor):
        raise DatasetError(
            f"apply_per_frame needs a transform returning a tensor (or a tuple of them), got {type(outs[0]).__name__}; "
            f"pass build_train_transform(...), build_views(...) or build_test_transform(...)."
        )
    return torch.stack(outs)


@dataclass(frozen=True)
class View:
    """A named training view: the paper's standard pipeline, then CAJ's channel random erasing (``erasing``) and
    channel step (``channel``: ChannelExchange for a visible image, ChannelAdaptiveGray for an infrared one), the
    channel step first when ``channel_first``; ``pad_fill`` the crop padding's uint8 value. ``from_previous``:
    the view starts from the previous view's normalised output (turned back into bytes as ``ToPILImage`` does,
    :func:`wrap_to_uint8`) instead of the image."""

    erasing: bool = False
    channel: bool = False
    pad_fill: int = 0
    channel_first: bool = False
    from_previous: bool = False


# The training views a paper's batch layout can name (vireid_lib.interface.BatchLayout.views).
VIEWS: dict[str, View] = {
    "train": View(),  # the paper's standard pipeline (TransformConfig alone)
    "erasing": View(erasing=True),  # + ChannelRandomErasing: CAJ's plain visible view, MCE's SYSU-MM01 visible view
    "caj": View(erasing=True, channel=True),  # + ChannelRandomErasing + the channel step: CAJ's augmented views
    # MCE's RegDB visible and thermal view (data_loader.RegDBData.transform): Pad(10, fill=127) -> crop -> erasing
    "erasing_grey_pad": View(erasing=True, pad_fill=127),
    # CST's data_loader.py: the first visible view replicates a channel and then erases (transform_color)...
    "exchange_erasing": View(erasing=True, channel=True, channel_first=True),
    # ... and the second is transform_color1 applied to the first view's normalised output (the released code's
    # order; fresh_second_view builds it from the image instead, as "caj")
    "caj_of_previous": View(erasing=True, channel=True, from_previous=True),
}


def build_view(cfg: TransformConfig, modality: int, name: str) -> Callable[[ImageLike], torch.Tensor]:
    """One named training view of an image (see :data:`VIEWS`); ``"train"`` is the paper's standard pipeline.

    Every view draws its crop, flip and erasing independently, as the official pipelines (one
    ``Compose`` per view, each applied to the same image) do.
    """
    _check_modality(modality)
    if name not in VIEWS:
        raise DatasetError(f"training view {name!r} is not known; use one of {tuple(VIEWS)}.")
    if name == "train":
        return build_train_transform(cfg, modality)
    view = VIEWS[name]
    steps = _standard_train_steps(cfg, view.pad_fill)
    if view.from_previous:
        steps[0] = wrap_to_uint8
    erase = [ChannelRandomErasing(cfg.caj_erasing, cfg.erasing_fill, inplace=True)] if view.erasing else []
    channel = [ChannelExchange(inplace=True) if modality == VISIBLE else ChannelAdaptiveGray(0.5, inplace=True)] \
        if view.channel else []
    return Compose(steps + (channel + erase if view.channel_first else erase + channel))


def build_views(cfg: TransformConfig, modality: int, names: Sequence[str]) -> Callable[[ImageLike], object]:
    """The transform of a batch layout's views of one modality: one view's pipeline, or a :class:`MultiView` of
    them (a view ``from_previous`` takes the previous view's output)."""
    views = [build_view(cfg, modality, name) for name in names]
    if not views:
        raise DatasetError(f"no training view named for modality {modality}; a batch layout names at least one.")
    if VIEWS[names[0]].from_previous:
        raise DatasetError(f"view {names[0]!r} is made from the previous view, so it cannot come first.")
    return views[0] if len(views) == 1 else MultiView(views, [VIEWS[n].from_previous for n in names])
