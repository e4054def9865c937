"""Features from a model in evaluation mode: test features in the form the protocol runners ask
for, and whole-training-set passes (e.g. MCE's per-epoch memory rebuild) through the same loader."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.cache import load_test_cache
from ..data.datasets import ImageDataset, TrackletDataset
from ..data.transforms import Compose, Normalize
from ..data.records import INFRARED, TrackletRecord
from ..progress import progress


@torch.no_grad()
def embed(model: nn.Module, batch: torch.Tensor | Sequence[torch.Tensor], modality: int, flip: bool = False,
          output: str = "embedding") -> torch.Tensor:
    """The model's test feature for one batch of a single modality, optionally flip-averaged.

    ``batch`` is the images (or clips), or ``(images, *side inputs)`` (e.g. ``(clips, keypoints)``):
    each part goes in its modality's slot, ``model(v, None, v_side, None)`` or
    ``model(None, i, None, i_side)``, the order a training batch gives them. Flip averaging (CAJ
    and later papers: the mean of the image's and its mirror's feature) flips the images only;
    it is off by default because AGW and the IV-ReID baseline do not use it. The mirrors go
    through the network in the same forward pass as the images (one batch of twice the size: in
    evaluation mode every image's feature is its own, and one large batch keeps a GPU busier
    than two half-size ones); side inputs are repeated for them.
    """
    parts = list(batch) if isinstance(batch, (list, tuple)) else [batch]
    count = len(parts[0])
    if flip:
        parts = [torch.cat([parts[0], torch.flip(parts[0], dims=[-1])])] + [torch.cat([p, p]) for p in parts[1:]]
    args: list[torch.Tensor | None] = []
    for part in parts:
        args += [None, part] if modality == INFRARED else [part, None]
    features = model(*args)[output].float()
    if flip:
        features = (features[:count] + features[count:]) / 2
    return features


@torch.no_grad()
def extract_features(
    model: nn.Module,
    dataset,
    modality: int,
    device: str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    flip: bool = False,
    output: str = "embedding",
    amp: str = "off",
    channels_last: bool = False,
    desc: str | None = None,
    normalize: Normalize | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D] float32 on the CPU, pids [N])`` of a dataset of one modality, in order.

    The model runs in evaluation mode under ``no_grad`` (its mode is restored afterwards), on
    ``device``, under bf16 / fp16 autocast when ``amp`` asks for it on CUDA, channels-last when
    asked. ``desc`` shows a progress bar. Every feature pass of the workbook goes through here.
    ``normalize``: the dataset yields uint8 images (or clips) and this normalisation runs on the
    device, on whole batches (a quarter of the bytes through the loader; the same values).
    """
    was_training = model.training
    model.eval()
    if channels_last:  # the weights too, or every convolution converts its input back (idempotent)
        model.to(memory_format=torch.channels_last)
    cuda = torch.device(device).type == "cuda"
    precision = (torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
                 if cuda and amp != "off" else contextlib.nullcontext())
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False, pin_memory=cuda)
    features, pids = [], []
    try:
        for images, pid, _ in progress(loader, desc=desc, enabled=desc is not None, unit="batch"):
            if isinstance(images, (list, tuple)):  # (clips, side inputs such as keypoints)
                images = [part.to(device, non_blocking=True) for part in images]
                if normalize is not None:
                    images[0] = normalize.batch(images[0])
            else:
                images = images.to(device, non_blocking=True)
                if normalize is not None:
                    images = normalize.batch(images)
                if channels_last and images.ndim == 4:
                    images = images.contiguous(memory_format=torch.channels_last)
            with precision:
                features.append(embed(model, images, modality, flip, output).cpu())
            pids.append(torch.as_tensor(pid))
    finally:
        model.train(was_training)
    return torch.cat(features), torch.cat(pids)


def split_normalize(transform: Callable) -> tuple[Callable, Normalize | None]:
    """``(the transform up to its uint8 output, its final Normalize)`` when it ends with one, else ``(transform, None)``."""
    if isinstance(transform, Compose) and len(transform.steps) > 1 and isinstance(transform.steps[-1], Normalize):
        return Compose(transform.steps[:-1]), transform.steps[-1]
    return transform, None


def make_extractor(
    model: nn.Module,
    transform: Callable,
    device: str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    flip: bool = False,
    seq_len: int = 6,
    output: str = "embedding",
    skeletons: str | Path | None = None,
    channels_last: bool = False,
    amp: str = "off",
    cache: bool = False,
    size: tuple[int, int] | None = None,
    test_frames: str = "first",
    frame_seed: int = 0,
) -> Callable[[Sequence], np.ndarray]:
    """``records -> features`` (one row per record, in order) for the protocol runners.

    Records of one call may mix modalities; each modality goes through its own stem and the
    rows come back in the records' order. Tracklet records are sampled with the test rule
    ``test_frames`` (each chunk's first frame, or a random one seeded by ``frame_seed`` and the
    tracklet: :class:`~vireid_lib.data.datasets.TrackletDataset`).
    ``output`` names the evaluation output taken as the feature (a paper's test-feature variant).
    ``skeletons``: a skeleton store whose keypoints go to the model beside each clip.
    ``channels_last``: run image batches (and the model) in the channels-last layout; ``amp``:
    bf16 / fp16 autocast on CUDA.

    The loader hands over uint8 images and the device normalises whole batches when ``transform``
    ends with its :class:`~vireid_lib.data.transforms.Normalize` (the test transforms do). With
    ``cache`` (image records; ``size`` = (height, width) of the transform's output) every record
    set is resized once by ``transform``'s own steps into a memory-mapped uint8 array
    (:func:`~vireid_lib.data.cache.load_test_cache`) and later calls (every evaluation during
    training, the best-on-test checkpoint, other variants) read it instead of decoding again.
    """
    hand_over, normalize = split_normalize(transform)

    def extract(records: Sequence) -> np.ndarray:
        out: list[np.ndarray | None] = [None] * len(records)
        for modality in sorted({r.modality for r in records}):
            positions = [i for i, r in enumerate(records) if r.modality == modality]
            subset = [records[i] for i in positions]
            if isinstance(subset[0], TrackletRecord):
                dataset = TrackletDataset(subset, seq_len, hand_over, skeletons=skeletons, test_frames=test_frames,
                                          frame_seed=frame_seed)
            else:
                images = (load_test_cache(subset, hand_over, size, workers=workers)
                          if cache and size is not None and normalize is not None else None)
                dataset = ImageDataset(subset, _hwc_to_chw if images is not None else hand_over, images)
            rows, _ = extract_features(model, dataset, modality, device, batch_size, workers, flip, output, amp=amp,
                                       channels_last=channels_last, normalize=normalize)
            for position, row in zip(positions, rows.numpy()):
                out[position] = row
        return np.stack(out)

    return extract


def _hwc_to_chw(image: np.ndarray) -> torch.Tensor:
    # A cached H x W x 3 row as the 3 x H x W uint8 tensor the transform would have made (a view, no copy).
    return torch.from_numpy(image).permute(2, 0, 1)
