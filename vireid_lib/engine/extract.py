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

from ..data.datasets import ImageDataset, TrackletDataset
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
    it is off by default because AGW and the IV-ReID baseline do not use it.
    """
    parts = list(batch) if isinstance(batch, (list, tuple)) else [batch]

    def run(images: torch.Tensor) -> torch.Tensor:
        args: list[torch.Tensor | None] = []
        for part in [images, *parts[1:]]:
            args += [None, part] if modality == INFRARED else [part, None]
        return model(*args)[output].float()

    features = run(parts[0])
    if flip:
        features = (features + run(torch.flip(parts[0], dims=[-1]))) / 2
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D] float32 on the CPU, pids [N])`` of a dataset of one modality, in order.

    The model runs in evaluation mode under ``no_grad`` (its mode is restored afterwards), on
    ``device``, under bf16 / fp16 autocast when ``amp`` asks for it on CUDA, channels-last when
    asked. ``desc`` shows a progress bar. Every feature pass of the workbook goes through here.
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
            else:
                images = images.to(device, non_blocking=True)
                if channels_last and images.ndim == 4:
                    images = images.contiguous(memory_format=torch.channels_last)
            with precision:
                features.append(embed(model, images, modality, flip, output).cpu())
            pids.append(torch.as_tensor(pid))
    finally:
        model.train(was_training)
    return torch.cat(features), torch.cat(pids)


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
) -> Callable[[Sequence], np.ndarray]:
    """``records -> features`` (one row per record, in order) for the protocol runners.

    Records of one call may mix modalities; each modality goes through its own stem and the
    rows come back in the records' order. Tracklet records are sampled with the test rule.
    ``output`` names the evaluation output taken as the feature (a paper's test-feature variant).
    ``skeletons``: a skeleton store whose keypoints go to the model beside each clip.
    ``channels_last``: run image batches (and the model) in the channels-last layout.
    """
    def extract(records: Sequence) -> np.ndarray:
        out: list[np.ndarray | None] = [None] * len(records)
        for modality in sorted({r.modality for r in records}):
            positions = [i for i, r in enumerate(records) if r.modality == modality]
            subset = [records[i] for i in positions]
            if isinstance(subset[0], TrackletRecord):
                dataset = TrackletDataset(subset, seq_len, transform, skeletons=skeletons)
            else:
                dataset = ImageDataset(subset, transform)
            rows, _ = extract_features(model, dataset, modality, device, batch_size, workers, flip, output,
                                       channels_last=channels_last)
            for position, row in zip(positions, rows.numpy()):
                out[position] = row
        return np.stack(out)

    return extract
