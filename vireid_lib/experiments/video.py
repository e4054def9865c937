"""A video paper run (HITSZ-VCM, BUPTCampus or any video benchmark declared): its tables and pictures.

``cst_vcm.ipynb`` and ``star_vcm.ipynb`` call :func:`vireid_lib.experiments.prepare` once per model (the paper, then the
model it is compared with unless skipped), then ``train()``, ``evaluate()`` and ``record()``; the
tables, curves, ranked lists, attention and skeleton maps come from the methods below. ``None``
means the recipe's value. Nothing here depends on which paper runs: what differs is in the
papers' declarations, and what differs between datasets in theirs (:mod:`vireid_lib.benchmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..data.datasets import TrackletDataset, skeleton_key
from ..data.records import INFRARED, VISIBLE
from ..data.skeletons import FILE_NAME as SKELETON_FILE
from ..data.skeletons import SkeletonStore
from ..data.summary import summarise_reader
from ..data.transforms import build_test_transform
from .common import SYNTHETIC_CAPTION, ExperimentError, PaperRun


@dataclass
class VideoRun(PaperRun):
    """Everything one HITSZ-VCM or BUPTCampus run needs; built by :func:`vireid_lib.experiments.prepare`."""

    def summary(self) -> pd.DataFrame:
        return summarise_reader(self.reader)

    def tracklets(self) -> pd.DataFrame:
        """One row per tracklet: split, modality, camera, identity, length (for the histogram)."""
        visible, infrared = self.reader.train()
        test = self.benchmark.example(self.reader, self.trial)
        rows = []
        for split, records in (("train", visible + infrared), ("test", test.query + test.gallery)):
            rows += [{"split": split, "modality": "visible" if r.modality == VISIBLE else "infrared",
                      "camera": r.camid, "pid": r.pid, "frames": len(r.frames)} for r in records]
        return pd.DataFrame(rows)

    def compare_with_paper(self, others: tuple["VideoRun", ...] = ()) -> pd.DataFrame:
        """The paper's comparison table (its declaration's ``compared`` rows as reported, e.g. CST's
        CAJL, MITML, IBAN and CST), then this run and ``others`` (e.g. the baseline trained by the same
        notebook), both directions side by side; each run's rows come from the checkpoint it reports for
        that direction, which the caption names."""
        compared = tuple(self.declaration.compared) or (self.method,)
        reported = self.reported(compared)
        rows = []
        for method in compared if len(reported) else ():  # no row reported on this dataset (BUPTCampus): none shown
            for _, r in reported[reported["method"] == method].iterrows():
                rows.append({"method": r["paper"], "source": "reported", "direction": r["direction"],
                             # a paper may report mAP only (STAR's README): the missing column stays empty
                             "R1": pd.to_numeric(r["R1"], errors="coerce"), "mAP": pd.to_numeric(r["mAP"], errors="coerce")})
        for run in (self, *others):
            if run.evaluation is None:
                continue
            for _, r in run.evaluation.summary.iterrows():
                rows.append({"method": run.paper, "source": f"this run ({run.data_kind})", "direction": r["direction"],
                             "R1": round(float(r["R1"]), 2), "mAP": round(float(r["mAP"]), 2),
                             "mINP": round(float(r["mINP"]), 2)})
        table = pd.DataFrame(rows)
        wide = table.pivot_table(index=["method", "source"], columns="direction", values=["R1", "mAP"], sort=False,
                                 dropna=False)
        wide.columns = [f"{direction} {metric}" for metric, direction in wide.columns]
        ordered = [f"{d} {m}" for d in self.benchmark.directions for m in ("R1", "mAP") if f"{d} {m}" in wide.columns]
        table = wide[ordered].reset_index()
        chosen = " ".join(f"{run.paper} reports {run.describe_selection()}" for run in (self, *others)
                          if run.evaluation is not None)
        table.attrs["caption"] = (SYNTHETIC_CAPTION + " " if self.data_kind != "real" else "") + chosen
        return table

    def cmc_curves(self, others: tuple["VideoRun", ...] = ()) -> dict:
        """The evaluated runs' CMC curves, ``{(f"{title} {protocol}", direction): curves}``, for ``plot_cmc``."""
        curves = {}
        for run in (self, *others):
            if run.evaluation is not None:
                curves.update({(f"{run.paper} {p}", d): c for (p, d), c in run.evaluation.cmc.items()})
        return curves

    def clip(self, record) -> torch.Tensor:
        """The normalised test clip [S, 3, H, W] of one tracklet record."""
        return self._test_tracklets([record])[0][0]

    def _test_tracklets(self, records, skeletons=None) -> TrackletDataset:
        """Test clips of ``records`` sampled as the run's evaluation samples them (its ``test_frames`` rule)."""
        return TrackletDataset(records, self.params["seq_len"], build_test_transform(self.test_transform),
                               skeletons=skeletons, test_frames=self.recipe.test_frames, frame_seed=self.recipe.seed)

    def attention_examples(self, count: int = 1) -> list[tuple[str, object, torch.Tensor, object]]:
        """(modality name, record, clip, attention) for ``count`` visible and ``count`` infrared test tracklets."""
        if not hasattr(self.model, "attention"):
            raise ExperimentError(f"{self.paper} has no attention maps (its model has no transformer).")
        split = self.benchmark.example(self.reader, self.trial)
        out = []
        for modality, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            records = [r for r in split.query + split.gallery if r.modality == modality][:count]
            for record in records:
                clip = self.clip(record)
                device = self.train_config.device
                out.append((name, record, clip, self.model.attention(clip[None].to(device), name)))
        return out


    # -- skeletons (papers that read them beside the frames, e.g. STAR) -----------------------------------

    @property
    def skeleton_store(self) -> Path:
        """The skeleton store this run reads (default: the one in the data root)."""
        return Path(self.params.get("skeleton_store") or Path(self.root) / SKELETON_FILE)

    def skeleton_coverage(self, min_score: float = 0.3) -> pd.DataFrame:
        """Per split and modality: tracklets, frames, the share of frames in the skeleton store, the mean joint
        score, and the frames with no joint scored at least ``min_score``."""
        visible, infrared = self.reader.train()
        test = self.benchmark.example(self.reader, self.trial)
        rows = []
        with SkeletonStore(self.skeleton_store) as store:
            folders: dict[str, dict[str, np.ndarray]] = {}
            known = set(store.folders())
            for split, records in (("train", visible + infrared), ("test", test.query + test.gallery)):
                for modality in (VISIBLE, INFRARED):
                    chosen = [r for r in records if r.modality == modality]
                    scores, found, frames = [], 0, 0
                    for record in chosen:
                        for frame in record.frames:
                            folder, _, name = skeleton_key(frame).rpartition("/")
                            if folder not in folders:
                                names, points = store.read_folder(folder) if folder in known else ([], [])
                                folders[folder] = dict(zip(names, points))
                            frames += 1
                            if name in folders[folder]:
                                found += 1
                                scores.append(folders[folder][name][:, 2])
                    joint = np.stack(scores) if scores else np.zeros((0, 17))
                    rows.append({"split": split, "modality": "visible" if modality == VISIBLE else "infrared",
                                 "tracklets": len(chosen), "frames": frames,
                                 "in store %": round(100.0 * found / max(frames, 1), 2),
                                 "mean joint score": round(float(joint.mean()), 3) if len(joint) else float("nan"),
                                 f"frames with no joint >= {min_score}": int((joint.max(axis=1) < min_score).sum())})
            estimator = store.estimator
        table = pd.DataFrame(rows)
        table.attrs["caption"] = f"skeleton store {self.skeleton_store} (keypoints from: {estimator or 'unrecorded'})"
        return table

    def skeleton_clip(self, record) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(test clip ``[S, 3, H, W]``, keypoints ``[S, 17, 3]`` as stored, the same keypoints in the clip's pixels)."""
        dataset = self._test_tracklets([record], skeletons=self.skeleton_store)
        (clip, keypoints), _, _ = dataset[0]
        shown = keypoints.clone()
        for row, index in enumerate(dataset.frame_indices(0)):
            with Image.open(record.frames[index]) as image:
                width, height = image.size
            shown[row, :, 0] *= clip.shape[-1] / width
            shown[row, :, 1] *= clip.shape[-2] / height
        return clip, keypoints, shown

    def skeleton_examples(self, count: int = 1) -> list[tuple[str, object, torch.Tensor, torch.Tensor, object]]:
        """(modality, record, clip, keypoints in the clip's pixels, the model's skeleton attention or None) for
        ``count`` visible and ``count`` infrared test tracklets."""
        split = self.benchmark.example(self.reader, self.trial)
        out = []
        for modality, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            for record in [r for r in split.query + split.gallery if r.modality == modality][:count]:
                clip, keypoints, shown = self.skeleton_clip(record)
                attention = None
                if getattr(self.model, "skeletons", False):
                    device = self.train_config.device
                    attention = self.model.attention(clip[None].to(device), keypoints[None].to(device), name)
                out.append((name, record, clip, shown, attention))
        return out
