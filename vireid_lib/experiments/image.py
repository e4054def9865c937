"""An image-based paper run (SYSU-MM01, RegDB, LLCM or any image benchmark declared): its tables and pictures.

The notebook of a paper calls :func:`vireid_lib.experiments.prepare` with its parameters, then ``train()``,
``evaluate()`` and ``record()`` on what comes back. Everything a parameter leaves as ``None``
takes the paper's value from its declared recipe (:mod:`vireid_lib.papers`), and the resolved
configuration is what the result record stores. Nothing here depends on which paper runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from ..data.records import INFRARED, VISIBLE
from ..data.summary import summarise_reader
from ..data.transforms import build_test_transform
from .common import SYNTHETIC_CAPTION, ExperimentError, PaperRun, resolve_device

__all__ = ["ExperimentError", "ImageRun", "resolve_device"]


@dataclass
class ImageRun(PaperRun):
    """Everything one image run needs; built by :func:`vireid_lib.experiments.prepare`."""

    def summary(self) -> pd.DataFrame:
        return summarise_reader(self.reader, self.benchmark.run_trial(self.trial))

    def compare_with_paper(self) -> pd.DataFrame:
        """This run's reported rows (the checkpoint its selection picks, named in a column) beside the paper's
        reported numbers.

        On real data each metric gets a difference column. On synthetic data the paper's numbers
        are shown for orientation only: no difference is computed, and the table's caption
        (``attrs["caption"]``, shown by :func:`vireid_lib.viz.table`) says why.
        """
        reported = self.reported()
        real = self.data_kind == "real"
        rows = []
        for _, row in self.evaluation.summary.iterrows():
            match = reported[(reported["protocol"] == row["protocol"]) & (reported["direction"] == row["direction"])] \
                if len(reported) else reported
            entry = {"protocol": row["protocol"], "direction": row["direction"]}
            for metric in ("R1", "mAP", "mINP", "R10", "R20"):  # what a reader compares first, first
                theirs = float(match.iloc[0][metric]) if len(match) and match.iloc[0].get(metric) not in ("", None) else None
                entry[f"{metric} ours"] = round(row[metric], 2) if metric in row else None
                entry[f"{metric} paper"] = theirs
                if real:
                    entry[f"{metric} Δ"] = None if theirs is None or metric not in row else round(row[metric] - theirs, 2)
            entry["trials"] = row["trials"]
            entry["checkpoint"] = f"{row['checkpoint']} (epoch {row['epoch']})"
            rows.append(entry)
        table = pd.DataFrame(rows).dropna(axis=1, how="all")
        table.attrs["caption"] = (SYNTHETIC_CAPTION if not real else
                                  "Real data, mean over trials; Δ = ours - paper. Ours: " + self.describe_selection())
        return table

    def resize_effect(self) -> pd.DataFrame:
        """The selection test's first setting scored with the official test-time resize and with the other filter
        (bilinear <-> Lanczos): how much the choice of filter alone moves the numbers."""
        official = self.test_transform.interpolation
        rows = []
        for interpolation in (official, "bilinear" if official == "lanczos" else "lanczos"):
            name = self.selection_variant
            extract = self.extractor(name, transform=replace(self.test_transform, interpolation=interpolation))
            row = self._selection_protocols(extract, self.variants[name].metric).summary.iloc[0]
            rows.append({"test resize": interpolation + (" (official)" if interpolation == official else ""),
                         "setting": f"{row['protocol']}, {row['direction']}", "R1": row["R1"], "mAP": row["mAP"]})
        table = pd.DataFrame(rows)
        table.loc[1, "Δ R1"] = table.loc[1, "R1"] - table.loc[0, "R1"]
        table.loc[1, "Δ mAP"] = table.loc[1, "mAP"] - table.loc[0, "mAP"]
        return table

    def training_batch(self, count: int = 4) -> tuple[dict[str, torch.Tensor], list[str]]:
        """``count`` visible and ``count`` infrared training images (spread over the set), as test-transformed
        tensors by modality name, and a title per image (visible first)."""
        from ..data.io import read_image

        transform = build_test_transform(self.test_transform)
        visible, infrared = self.benchmark.train(self.reader, self.trial)
        pictures, titles = {}, []
        for name, records in (("visible", visible), ("infrared", infrared)):
            picks = records[:: max(1, len(records) // count)][:count]
            pictures[name] = torch.stack([transform(read_image(r.path)) for r in picks])
            titles += [f"{'VIS' if name == 'visible' else 'IR'} id {r.pid}" for r in picks]
        return pictures, titles

    def show_training_images(self, count: int = 8):
        """``count`` training images of each modality spread over the set (visible on top), saved as ``samples``."""
        from ..viz import show_samples

        visible, infrared = self.benchmark.train(self.reader, self.trial)
        picks = visible[::max(1, len(visible) // count)][:count] + infrared[::max(1, len(infrared) // count)][:count]
        return self.figure(show_samples(picks, title="training images: visible (top), infrared (bottom)"), "samples")

    def show_activation_maps(self):
        """The last block's mean activation on visible and infrared training images (:meth:`activation_examples`)."""
        from ..viz import plot_activation_maps

        return self.figure(plot_activation_maps(*self.activation_examples()), "activation_maps")

    def activation_examples(self, count: int = 4):
        """Normalised test images (visible then infrared training images) and their maps."""
        from ..viz import activation_maps

        pictures, titles = self.training_batch(count)
        images, maps = [], []
        for name, batch in pictures.items():
            images.append(batch)
            maps.append(activation_maps(self.model, batch.to(self.train_config.device), VISIBLE if name == "visible" else INFRARED))
        return torch.cat(images), np.concatenate(maps), titles
