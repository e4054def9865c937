"""A video paper run on HITSZ-VCM: the dataset's protocol and pictures.

``cst_vcm.ipynb`` calls :func:`prepare` once per model (CST, then the baseline unless
skipped), then ``train()``, ``evaluate()`` and ``record()``; the tables, curves, ranked lists
and attention maps come from the methods below. ``None`` means the recipe's value. Nothing here
depends on which paper runs: what differs is in the papers' declarations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data.datasets import TrackletDataset
from ..data.records import INFRARED, VISIBLE
from ..data.summary import summarise
from ..data.transforms import build_test_transform
from ..eval import Evaluation, pairwise_distance, run_vcm
from .common import SYNTHETIC_CAPTION, ExperimentError, PaperRun

DIRECTIONS = ("ir2rgb", "rgb2ir")


@dataclass
class VideoRun(PaperRun):
    """Everything one HITSZ-VCM run needs; built by :func:`prepare`."""

    def summary(self) -> pd.DataFrame:
        return summarise("vcm", self.root)

    def tracklets(self) -> pd.DataFrame:
        """One row per tracklet: split, modality, camera, identity, length (for the histogram)."""
        visible, infrared = self.reader.train()
        test = self.reader.split("ir2rgb")
        rows = []
        for split, records in (("train", visible + infrared), ("test", test.query + test.gallery)):
            rows += [{"split": split, "modality": "visible" if r.modality == VISIBLE else "infrared",
                      "camera": r.camid, "pid": r.pid, "frames": len(r.frames)} for r in records]
        return pd.DataFrame(rows)

    def _protocols(self, quick: bool = False, extract=None, metric: str = "cosine") -> Evaluation:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # queries without a cross-camera match are skipped by the protocol
            return run_vcm(self.reader, extract or self.extractor(), directions=DIRECTIONS[:1] if quick else DIRECTIONS,
                           metric=metric)

    def compare_with_paper(self, others: tuple["VideoRun", ...] = ()) -> pd.DataFrame:
        """The paper's comparison table (its declaration's ``compared`` rows as reported, e.g. CST's
        CAJL, MITML, IBAN and CST), then this run and ``others`` (e.g. the baseline trained by the same
        notebook), both directions side by side."""
        compared = tuple(self.declaration.compared) or (self.method,)
        reported = self.reported(compared)
        rows = []
        for method in compared:
            for _, r in reported[reported["method"] == method].iterrows():
                rows.append({"method": r["paper"], "source": "reported", "direction": r["direction"],
                             "R1": float(r["R1"]), "mAP": float(r["mAP"])})
        for run in (self, *others):
            if run.evaluation is None:
                continue
            for _, r in run.evaluation.summary.iterrows():
                rows.append({"method": run.paper, "source": f"this run ({run.data_kind})", "direction": r["direction"],
                             "R1": round(float(r["R1"]), 2), "mAP": round(float(r["mAP"]), 2),
                             "mINP": round(float(r["mINP"]), 2)})
        table = pd.DataFrame(rows)
        wide = table.pivot_table(index=["method", "source"], columns="direction", values=["R1", "mAP"], sort=False)
        wide.columns = [f"{direction} {metric}" for metric, direction in wide.columns]
        ordered = [f"{d} {m}" for d in DIRECTIONS for m in ("R1", "mAP") if f"{d} {m}" in wide.columns]
        table = wide[ordered].reset_index()
        if self.data_kind != "real":
            table.attrs["caption"] = SYNTHETIC_CAPTION
        return table

    def ranking_example(self, direction: str = "ir2rgb"):
        """(queries, gallery, distances, removed) of one direction, for ranked tracklet lists."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            split = self.reader.split(direction)
        extract = self.extractor()
        distances = pairwise_distance(extract(split.query), extract(split.gallery)).numpy()
        q_pid = np.array([q.pid for q in split.query])[:, None]
        q_cam = np.array([q.camid for q in split.query])[:, None]
        removed = (q_pid == np.array([g.pid for g in split.gallery])[None, :]) & (
            q_cam == np.array([g.camid for g in split.gallery])[None, :])  # the VCM rule drops same identity+camera
        return split.query, split.gallery, distances, removed

    def clip(self, record) -> torch.Tensor:
        """The normalised test clip [S, 3, H, W] of one tracklet record."""
        return TrackletDataset([record], self.params["seq_len"], build_test_transform(self.test_transform))[0][0]

    def attention_examples(self, count: int = 1) -> list[tuple[str, object, torch.Tensor, object]]:
        """(modality name, record, clip, attention) for ``count`` visible and ``count`` infrared test tracklets."""
        if not hasattr(self.model, "attention"):
            raise ExperimentError(f"{self.paper} has no attention maps (its model has no transformer).")
        split = self.reader.split("ir2rgb")
        out = []
        for modality, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            records = [r for r in split.query + split.gallery if r.modality == modality][:count]
            for record in records:
                clip = self.clip(record)
                device = self.train_config.device
                out.append((name, record, clip, self.model.attention(clip[None].to(device), name)))
        return out


def prepare(method: str = "cst", **parameters) -> VideoRun:
    """Build a HITSZ-VCM run of ``method`` (see :func:`vireid_lib.experiments.runner.prepare`)."""
    from .runner import prepare as prepare_run

    return prepare_run(method, "vcm", **parameters)
