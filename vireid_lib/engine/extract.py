"""Test features from a trained model, in the form the protocol runners ask for."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.datasets import ImageDataset, TrackletDataset
from ..data.records import INFRARED, TrackletRecord


@torch.no_grad()
def embed(model: nn.Module, batch: torch.Tensor, modality: int, flip: bool = False, output: str = "embedding") -> torch.Tensor:
    """The model's test feature for one batch of a single modality, optionally flip-averaged.

    Flip averaging (CAJ and later papers: the mean of the image's and its mirror's feature)
    is off by default because AGW and the IV-ReID baseline do not use it.
    """
    def run(x: torch.Tensor) -> torch.Tensor:
        outputs = model(None, x) if modality == INFRARED else model(x, None)
        return outputs[output].float()

    features = run(batch)
    if flip:
        features = (features + run(torch.flip(batch, dims=[-1]))) / 2
    return features


def make_extractor(
    model: nn.Module,
    transform: Callable,
    device: str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    flip: bool = False,
    seq_len: int = 6,
    output: str = "embedding",
) -> Callable[[Sequence], np.ndarray]:
    """``records -> features`` (one row per record, in order) for the protocol runners.

    Records of one call may mix modalities; each modality goes through its own stem and the
    rows come back in the records' order. Tracklet records are sampled with the test rule.
    ``output`` names the evaluation output taken as the feature (a paper's test-feature variant).
    """
    def extract(records: Sequence) -> np.ndarray:
        was_training = model.training
        model.eval()
        out: list[np.ndarray | None] = [None] * len(records)
        try:
            for modality in sorted({r.modality for r in records}):
                positions = [i for i, r in enumerate(records) if r.modality == modality]
                subset = [records[i] for i in positions]
                if isinstance(subset[0], TrackletRecord):
                    dataset = TrackletDataset(subset, seq_len, transform)
                else:
                    dataset = ImageDataset(subset, transform)
                loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
                rows = [embed(model, images.to(device), modality, flip, output).cpu().numpy() for images, _, _ in loader]
                for position, row in zip(positions, np.concatenate(rows)):
                    out[position] = row
        finally:
            model.train(was_training)
        return np.stack(out)

    return extract
