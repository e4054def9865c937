"""Activation maps: where the last convolutional block responds, over visible and infrared images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.records import INFRARED
from .common import IMAGENET_MEAN, IMAGENET_STD, add_colorbar, denormalise, heat_scale, overlay, relative_to_mean

LABEL = "activation ÷ image mean (1 = average)"


@torch.no_grad()
def activation_maps(model: torch.nn.Module, images: torch.Tensor, modality: int, layer: torch.nn.Module | None = None) -> np.ndarray:
    """Channel-mean activation magnitude of ``layer`` (default ``model.backbone``), upsampled to the image.

    Returns ``[N, H, W]`` maps divided by each image's mean activation: 1 is average, 2 twice
    the average. A map without structure is 1 everywhere (not stretched to look like one
    with), and maps of different images share one scale. This is where the last
    convolutional maps respond, i.e. what the test feature pools. Magnitudes (``|x|``) are
    averaged, which for the post-ReLU maps of a ResNet is the activation itself.
    """
    layer = layer if layer is not None else model.backbone
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    was_training = model.training
    model.eval()
    try:
        model(None, images) if modality == INFRARED else model(images, None)
    finally:
        handle.remove()
        model.train(was_training)
    maps = captured[-1].float().abs().mean(1, keepdim=True)
    maps = torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return relative_to_mean(maps.cpu(), axis=(1, 2))


def plot_activation_maps(images: torch.Tensor, maps: np.ndarray, titles: Sequence[str] = (),
                         mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Figure:
    """Normalised input images with their activation maps overlaid on one shared, labelled scale."""
    pictures = denormalise(images, mean, std)
    maps = np.asarray(maps)
    vmin, vmax = heat_scale(maps)
    fig = Figure(figsize=(1.5 * len(pictures) + 1.2, 3.2), layout="constrained")
    axes = fig.subplots(1, len(pictures), squeeze=False)[0]
    shown = None
    for i, ax in enumerate(axes):
        shown = overlay(ax, pictures[i], maps[i], vmin, vmax)
        if i < len(titles):
            ax.set_title(titles[i], fontsize=7)
    add_colorbar(fig, shown, list(axes), LABEL)
    return fig
