"""Training augmentation of whole uint8 batches on the run's device: the loader only indexes.

The per-sample pipeline of :mod:`.transforms` (pad + random crop, flip, normalise, random
erasing, CAJ's channel erasing, exchange and adaptive gray) runs image by image in loader
processes on the CPU. Here the same steps run on a whole ``[B, H, W, 3]`` uint8 batch at once,
on whatever device the batch is on: the loader hands over the cached, already-resized uint8
images untouched (4x fewer bytes than float32 across processes and the PCIe bus), and the GPU
does the rest in a handful of kernels.

Same distribution, not the same draws. Every sample still gets its own crop offset, flip,
erasing rectangle and channel choice, drawn with the formulas of the per-sample classes
(offsets uniform over the ``2 pad + 1`` positions, reid-strong-baseline's erasing box with up to
100 tries, CAJ's 1/3 channel exchange and 1/4 + 1/8 adaptive gray), but from torch's generator of
the batch's device, in a batched order, so a run on this path draws other crops than the
per-sample path with the same seed. ``tests/data/test_batched.py`` checks both halves: given the
same draws, the output equals the per-sample steps' bit for bit; and the two paths' outputs
agree in distribution. The trainer seeds every device's generator from (run seed, epoch), so a
resumed run on this path draws what the uninterrupted one drew.

A view is described by :class:`ViewSpec`, made from the same :class:`~.transforms.TransformConfig`
and view names (:data:`~.transforms.VIEWS`) as the per-sample pipeline by :func:`view_spec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DatasetError
from .records import INFRARED, VISIBLE
from .transforms import VIEWS, Normalize, Resize, TransformConfig, _check_modality, to_uint8_chw

CHANNEL_STEPS = ("none", "exchange", "gray")
ERASE_TRIES = 100  # reid-strong-baseline's RandomErasing gives up after 100 rejected rectangles


@dataclass(frozen=True)
class ViewSpec:
    """One training view as batched steps, in the per-sample pipeline's order.

    ``pad`` (crop padding, 0: no crop) filled with the uint8 ``pad_fill``; ``flip``; then
    normalisation with ``mean`` / ``std``; ``erasing`` (random erasing probability, 0: off) and
    ``channel_erasing`` (CAJ's ChannelRandomErasing probability, 0: off), both writing
    ``erasing_fill``; ``channel``: ``"exchange"`` (CAJ, visible), ``"gray"`` (CAJ's adaptive
    gray, infrared, with ``gray_p``) or ``"none"``.
    """

    pad: int = 10
    pad_fill: int = 0
    flip: bool = True
    erasing: float = 0.0
    channel_erasing: float = 0.0
    erasing_fill: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
    channel: str = "none"
    gray_p: float = 0.5
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.channel not in CHANNEL_STEPS:
            raise DatasetError(f"ViewSpec.channel={self.channel!r} is unknown; use one of {CHANNEL_STEPS}.")
        if not 0 <= self.pad_fill <= 255:
            raise DatasetError(f"ViewSpec.pad_fill={self.pad_fill!r} must be a uint8 value (0-255).")


def view_spec(cfg: TransformConfig, modality: int, name: str) -> ViewSpec:
    """The batched form of :func:`~.transforms.build_view` ``(cfg, modality, name)``."""
    _check_modality(modality)
    if name not in VIEWS:
        raise DatasetError(f"training view {name!r} is not known; use one of {tuple(VIEWS)}.")
    view = VIEWS[name]
    if view.channel_first or view.from_previous:
        raise DatasetError(f"training view {name!r} is made in the loader only (its channel step comes first, or it "
                           "starts from another view's output); use augment='loader'.")
    erasing, channel, pad_fill = view.erasing, view.channel, view.pad_fill
    step = ("exchange" if modality == VISIBLE else "gray") if channel else "none"
    return ViewSpec(pad=cfg.pad, pad_fill=pad_fill, flip=cfg.flip, erasing=cfg.random_erasing,
                    channel_erasing=cfg.caj_erasing if erasing else 0.0, erasing_fill=tuple(cfg.erasing_fill),
                    channel=step, mean=tuple(cfg.mean), std=tuple(cfg.std))


@dataclass
class Draws:
    """Every random choice of one batch through one view (tensors on the batch's device, length B).

    ``top`` / ``left``: the crop window's corner in the padded image (0 .. 2 pad); ``flip``;
    ``erase`` and ``channel_erase``: ``(apply, top, left, h, w)`` rectangles (``apply`` false when the
    probability said no or all 100 tries failed); ``channel``: 0-2 the replicated channel, 3 the
    adaptive-gray case (then ``gray`` says grey or unchanged).
    """

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor
    erase: tuple[torch.Tensor, ...] | None
    channel_erase: tuple[torch.Tensor, ...] | None
    channel: torch.Tensor | None
    gray: torch.Tensor | None


def _erase_boxes(count: int, height: int, width: int, p: float, device: torch.device,
                 area: tuple[float, float] = (0.02, 0.4), r1: float = 0.3) -> tuple[torch.Tensor, ...]:
    """``count`` rectangles drawn as :func:`~.transforms._sample_erase_box` draws one (float64 arithmetic,
    linear aspect in ``[r1, 1/r1]``, the first of 100 tries strictly inside the image), with probability ``p``."""
    apply = torch.rand(count, device=device) < p
    u = torch.rand(count, ERASE_TRIES, 4, device=device).double()
    target = (area[0] + (area[1] - area[0]) * u[..., 0]) * height * width
    ratio = r1 + (1.0 / r1 - r1) * u[..., 1]
    h = torch.round(torch.sqrt(target * ratio))
    w = torch.round(torch.sqrt(target / ratio))
    ok = (h > 0) & (h < height) & (w > 0) & (w < width)
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first accepted try (0 when none is)
    pick = lambda t: t.gather(1, first).squeeze(1)  # noqa: E731
    h, w = pick(h), pick(w)
    top = torch.minimum(torch.floor(pick(u[..., 2]) * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(pick(u[..., 3]) * (width - w + 1)), width - w)
    return apply & ok.any(dim=1), top.long(), left.long(), h.long(), w.long()


class BatchAugment:
    """One training view applied to a whole uint8 batch, on the batch's device.

    ``images``: ``[B, H, W, 3]`` uint8 (the cache's layout) or ``[B, 3, H, W]`` uint8. Returns the
    normalised float32 ``[B, 3, H, W]`` batch, contiguous (the
    trainer's ``channels_last`` option converts it, as it converts the per-sample batches).
    """

    def __init__(self, spec: ViewSpec) -> None:
        self.spec = spec
        self.normalize = Normalize(spec.mean, spec.std)  # the per-sample step's constants and operations

    def __repr__(self) -> str:
        return f"BatchAugment({self.spec})"

    def sample(self, count: int, height: int, width: int, device: torch.device | str = "cpu") -> Draws:
        """The random choices for ``count`` images of ``height x width``, from ``device``'s generator."""
        s = self.spec
        device = torch.device(device)
        corner = torch.randint(0, 2 * s.pad + 1, (2, count), device=device)
        flip = (torch.rand(count, device=device) < 0.5) if s.flip else torch.zeros(count, dtype=torch.bool, device=device)
        erase = _erase_boxes(count, height, width, s.erasing, device) if s.erasing > 0 else None
        channel_erase = _erase_boxes(count, height, width, s.channel_erasing, device) if s.channel_erasing > 0 else None
        channel = gray = None
        if s.channel == "exchange":
            channel = torch.randint(0, 3, (count,), device=device)
        elif s.channel == "gray":
            channel = torch.randint(0, 4, (count,), device=device)
            gray = torch.rand(count, device=device) < s.gray_p
        return Draws(corner[0], corner[1], flip, erase, channel_erase, channel, gray)

    def apply(self, images: torch.Tensor, draws: Draws, gather: bool | None = None) -> torch.Tensor:
        """The view of ``images`` under the given ``draws`` (deterministic).

        ``gather``: crop and erase with whole-batch index arithmetic (one kernel each: what a GPU
        wants) rather than a loop of per-image slice copies (what a CPU core does fastest, 20x
        faster here than the gather); by default the former on any device but the CPU. Both
        copy the same values, so they agree bit for bit.
        """
        hwc = _as_hwc(images)
        count, height, width, _ = hwc.shape
        s, device = self.spec, hwc.device
        gather = device.type != "cpu" if gather is None else gather
        if s.pad:
            padded = torch.full((count, height + 2 * s.pad, width + 2 * s.pad, 3), s.pad_fill, dtype=torch.uint8,
                                device=device)
            padded[:, s.pad:s.pad + height, s.pad:s.pad + width] = hwc
        else:
            padded = hwc
        crop = _crop_gather if gather else _crop_loop
        out = crop(padded, draws, height, width)  # [B, H, W, 3] uint8
        x = self.normalize.batch(out.permute(0, 3, 1, 2))  # HWC -> CHW and uint8 -> float32 in one copy
        for box in (draws.erase, draws.channel_erase):
            if box is not None:
                x = _erase(x, box, self.spec.erasing_fill, gather)
        if s.channel != "none":
            x = _channel_step(x, draws.channel, draws.gray, gather)
        return x

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        hwc = _as_hwc(images)
        return self.apply(hwc, self.sample(hwc.shape[0], hwc.shape[1], hwc.shape[2], hwc.device))


def _as_hwc(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise DatasetError(f"batched augmentation takes a uint8 batch [B, H, W, 3] or [B, 3, H, W]; got "
                           f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}.")
    if images.shape[-1] == 3:
        return images
    if images.shape[1] == 3:
        return images.permute(0, 2, 3, 1)
    raise DatasetError(f"batched augmentation got a uint8 batch of shape {tuple(images.shape)}: no axis of 3 channels.")


def _crop_gather(padded: torch.Tensor, draws: Draws, height: int, width: int) -> torch.Tensor:
    # Crop and flip are one gather: output column j reads padded column left + j, or left + W-1-j flipped.
    device = padded.device
    rows = torch.arange(height, device=device) + draws.top[:, None]
    cols = torch.arange(width, device=device)
    cols = torch.where(draws.flip[:, None], width - 1 - cols, cols) + draws.left[:, None]
    batch = torch.arange(padded.shape[0], device=device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def _crop_loop(padded: torch.Tensor, draws: Draws, height: int, width: int) -> torch.Tensor:
    out = torch.empty((padded.shape[0], height, width, 3), dtype=torch.uint8, device=padded.device)
    for b, (top, left, flip) in enumerate(zip(draws.top.tolist(), draws.left.tolist(), draws.flip.tolist())):
        window = padded[b, top:top + height, left:left + width]
        out[b] = window.flip(1) if flip else window
    return out


def _erase(x: torch.Tensor, box: tuple[torch.Tensor, ...], fill: tuple[float, float, float], gather: bool) -> torch.Tensor:
    """Write ``fill`` into each image's rectangle where ``apply`` says so."""
    apply, top, left, h, w = box
    if gather:
        rows = torch.arange(x.shape[2], device=x.device)
        cols = torch.arange(x.shape[3], device=x.device)
        inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])
        inside_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])
        mask = inside_rows[:, :, None] & inside_cols[:, None, :] & apply[:, None, None]
        values = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return torch.where(mask[:, None], values, x)
    for b in apply.nonzero().flatten().tolist():
        t, l, hh, ww = int(top[b]), int(left[b]), int(h[b]), int(w[b])
        for c in range(3):
            x[b, c, t:t + hh, l:l + ww] = fill[c]
    return x


def _channel_step(x: torch.Tensor, channel: torch.Tensor, gray: torch.Tensor | None, gather: bool) -> torch.Tensor:
    """Replicate channel ``channel[b]`` (0-2) of every image; 3 is adaptive gray's own case (grey or unchanged).

    The grey image is ``0.2989 R + 0.587 G + 0.114 B`` computed in that order, as the per-sample class does.
    """
    if not gather:  # in place, image by image: two channel copies (or one weighted sum) per image
        for b, (idx, grey) in enumerate(zip(channel.tolist(), gray.tolist() if gray is not None else [False] * len(x))):
            if idx < 3:
                for c in range(3):
                    if c != idx:
                        x[b, c] = x[b, idx]
            elif grey:
                x[b] = 0.2989 * x[b, 0] + 0.587 * x[b, 1] + 0.114 * x[b, 2]
        return x
    batch = torch.arange(x.shape[0], device=x.device)
    replicated = x[batch, channel.clamp(max=2)][:, None].expand_as(x)
    if gray is None:
        return replicated.contiguous()
    grey = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].expand_as(x)
    fourth = torch.where(gray[:, None, None, None], grey, x)
    return torch.where((channel < 3)[:, None, None, None], replicated, fourth)


class BatchViews:
    """A paired training batch's views, made on the device: the loader's uint8 batch in, the model's views out.

    ``views``: per modality name (``"visible"`` / ``"infrared"``), the view specs in the order of the
    paper's batch layout. Takes ``(visible [B, H, W, 3] uint8, infrared ..., visible pids, infrared pids)``
    and returns what the per-sample loader would have: per modality one float batch, or a tuple of
    them when the layout draws several views of each image (each with draws of its own).
    """

    def __init__(self, views: Mapping[str, Sequence[ViewSpec]]) -> None:
        self.views = {m: [BatchAugment(s) for s in specs] for m, specs in views.items()}

    def __call__(self, batch):
        visible, infrared, visible_pids, infrared_pids = batch
        made = []
        for name, images in (("visible", visible), ("infrared", infrared)):
            views = tuple(view(images) for view in self.views.get(name, ()))
            made.append(views[0] if len(views) == 1 else views)
        return made[0], made[1], visible_pids, infrared_pids


class LoaderImages:
    """What the loader does on the device path: an image as the ``H x W x 3`` uint8 tensor it hands over.

    A cached array (already at the training size) is passed through; anything else (a decoded
    file) is resized exactly as the per-sample pipeline's first steps resize it.
    """

    def __init__(self, cfg: TransformConfig) -> None:
        self.size = (cfg.height, cfg.width)
        self.resize = Resize(cfg.height, cfg.width, cfg.interpolation)

    def __call__(self, image) -> torch.Tensor:
        if isinstance(image, np.ndarray) and image.shape[:2] == self.size:
            return torch.from_numpy(image if image.flags.writeable else image.copy())
        return self.resize(to_uint8_chw(image)).permute(1, 2, 0).contiguous()


def batched_views(cfg: TransformConfig, names: Mapping[str, Sequence[str]]) -> BatchViews:
    """:class:`BatchViews` for a batch layout's ``views`` (modality name -> view names)."""
    modality = {"visible": VISIBLE, "infrared": INFRARED}
    return BatchViews({m: [view_spec(cfg, modality[m], n) for n in names_] for m, names_ in names.items()})


__all__ = ["BatchAugment", "BatchViews", "Draws", "LoaderImages", "ViewSpec", "batched_views", "view_spec"]
