"""A video paper run on HITSZ-VCM: CST or the MITML-style video baseline.

``cst_vcm.ipynb`` calls :func:`prepare` once per model (CST, then the baseline unless
skipped), then ``train()``, ``evaluate()`` and ``record()``; the tables, curves, ranked lists
and attention maps come from the methods below. ``None`` means the recipe's value.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import HITSZVCM
from ..data.datasets import PairedTrackletDataset, TrackletDataset
from ..data.records import INFRARED, VISIBLE
from ..data.samplers import TrackletSampler
from ..data.summary import summarise
from ..data.synthetic import SyntheticConfig, ensure_synthetic
from ..data.transforms import TransformConfig, build_test_transform, build_train_transform
from ..engine import TrainConfig
from ..eval import Evaluation, pairwise_distance, run_vcm
from ..models import (CSTAttention, CSTCriterion, CSTRecipe, VideoBaselineCriterion, VideoBaselineRecipe, build_cst,
                      build_video_baseline)
from ..paths import resolve
from ..data import provenance
from .common import (SYNTHETIC_CAPTION, ExperimentError, PaperRun, resolve_device, run_identity, scaled_pad,
                     training_loader)
from .params import check_amp, check_parameters, paper_value

PAPERS = {"cst": "CST", "baseline": "Video baseline (MITML-style)"}
RECIPES = {"cst": CSTRecipe(), "baseline": VideoBaselineRecipe()}
# The rows of CST's README table, in its order, then the paper itself.
COMPARED = ("cajl", "mitml", "iban", "cst")
DIRECTIONS = ("ir2rgb", "rgb2ir")


@dataclass
class VideoRun(PaperRun):
    """Everything one HITSZ-VCM run needs; built by :func:`prepare`."""

    @property
    def paper(self) -> str:
        return PAPERS[self.method]

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

    def _protocols(self, quick: bool = False, extract=None) -> Evaluation:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # queries without a cross-camera match are skipped by the protocol
            return run_vcm(self.reader, extract or self.extractor(), directions=DIRECTIONS[:1] if quick else DIRECTIONS)

    def compare_with_paper(self, others: tuple["VideoRun", ...] = ()) -> pd.DataFrame:
        """CST's table: CAJL, MITML, IBAN and CST as reported, then this run (and ``others``, e.g.
        the baseline trained by the same notebook), both directions side by side."""
        reported = self.reported(COMPARED)
        rows = []
        for method in COMPARED:
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
        return TrackletDataset([record], self.params["seq_len"], build_test_transform(self.transform))[0][0]

    def attention_examples(self, count: int = 1) -> list[tuple[str, object, torch.Tensor, CSTAttention]]:
        """(modality name, record, clip, attention) for ``count`` visible and ``count`` infrared test tracklets."""
        if self.method != "cst":
            raise ExperimentError("attention maps exist for method='cst' only (the baseline has no transformer).")
        split = self.reader.split("ir2rgb")
        out = []
        for modality, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            records = [r for r in split.query + split.gallery if r.modality == modality][:count]
            for record in records:
                clip = self.clip(record)
                device = self.train_config.device
                out.append((name, record, clip, self.model.attention(clip[None].to(device), name)))
        return out


def parse_tube(tube: object) -> tuple[int, int, int]:
    """A tube size from a tuple or list, or from text such as "(2, 3, 3)" or "2,3,3" (papermill's -p gives text)."""
    values = re.findall(r"-?\d+", tube) if isinstance(tube, str) else list(tube)  # type: ignore[arg-type]
    try:
        sizes = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 1:
        raise ExperimentError(f"tube={tube!r} must be three positive integers (frames, map rows, map cols), e.g. (2, 3, 3).")
    return sizes  # type: ignore[return-value]


def prepare(method: str = "cst", data_root: str = "", seq_len: int | None = None, epochs: int | None = None,
            lr: float | None = None, num_ids: int | None = None, num_per_modality: int | None = None,
            height: int | None = None, width: int | None = None, tube: tuple[int, int, int] | None = None,
            dim: int | None = None, cttm_depth: int | None = None, mtfm_depth: int | None = None,
            heads: int | None = None, dc_weight: float | None = None, lstm: bool = True, arch: str = "resnet50",
            pretrained: bool = True, weights_file: str = "", checkpoint: str = "", device: str = "auto",
            amp: str = "off", seed: int | None = None, workers: int = 2, out_dir: str = "runs", eval_every: int = 0,
            synthetic_ids: int = 24, resume: bool = True, progress: bool = True, batches_per_epoch: int | None = None,
            optimizer: str | None = None, backbone_lr_factor: float | None = None) -> VideoRun:
    """Build a HITSZ-VCM run of ``method`` ("cst" or "baseline"); an empty ``data_root`` means the synthetic twin."""
    if method not in RECIPES:
        raise ExperimentError(f"method={method!r} is not a video method; use one of {sorted(RECIPES)}.")
    check_parameters(locals())
    device = resolve_device(device)
    check_amp(amp, device)
    recipe = RECIPES[method]
    seq_len = paper_value(seq_len, recipe.seq_len)
    root = Path(data_root) if data_root else ensure_synthetic("vcm", config=SyntheticConfig(ids=synthetic_ids))
    reader = HITSZVCM(root)
    data_kind, data_sizes = provenance.data_kind("vcm", root, reader)
    visible, infrared = reader.train()
    num_classes = len({r.pid for r in visible} | {r.pid for r in infrared})
    height, width = paper_value(height, recipe.height), paper_value(width, recipe.width)
    transform = TransformConfig(height=height, width=width, pad=scaled_pad(width, recipe.width), flip=True)
    pairs = PairedTrackletDataset(
        TrackletDataset(visible, seq_len, build_train_transform(transform, VISIBLE), train=True),
        TrackletDataset(infrared, seq_len, build_train_transform(transform, INFRARED), train=True),
    )
    seed = paper_value(seed, recipe.seed)
    sampling = dict(num_ids=paper_value(num_ids, recipe.num_ids),
                    num_per_modality=paper_value(num_per_modality, recipe.num_per_modality), replace=recipe.replace,
                    seed=seed, epoch_length=paper_value(batches_per_epoch, "official"), seq_len=seq_len)
    sampler = TrackletSampler([r.pid for r in visible], [r.pid for r in infrared],
                              **{k: v for k, v in sampling.items() if k != "seq_len"})
    loader = training_loader(pairs, sampler, workers, device)
    torch.manual_seed(seed)  # the initial weights are part of the run: same seed, same model
    weights = dict(pretrained=pretrained and not weights_file, weights_file=weights_file or None, arch=arch)
    model_params: dict = {}
    if method == "cst":
        model_params = dict(dim=paper_value(dim, recipe.dim), tube=recipe.tube if tube is None else parse_tube(tube),
                            heads=paper_value(heads, recipe.heads), cttm_depth=paper_value(cttm_depth, recipe.cttm_depth),
                            mtfm_depth=paper_value(mtfm_depth, recipe.mtfm_depth))
        try:
            model = build_cst(num_classes, seq_len=seq_len, height=height, width=width, **model_params, **weights)
        except ValueError as err:
            raise ExperimentError(f"CST cannot be built with these parameters: {err}") from err
        model_params["dc_weight"] = recipe.dc_weight if dc_weight is None else dc_weight
        criterion = CSTCriterion(num_classes, margin=recipe.margin, dc_weight=model_params["dc_weight"])
    else:
        model = build_video_baseline(num_classes, lstm=lstm, **weights)
        model_params = {"lstm": lstm}
        criterion = VideoBaselineCriterion(num_classes, margin=recipe.margin)
    if backbone_lr_factor is not None:
        model.backbone_lr_factor = backbone_lr_factor
    other_optimizer = optimizer not in (None, recipe.optimizer)
    config = TrainConfig(
        epochs=paper_value(epochs, recipe.epochs), optimizer=paper_value(optimizer, recipe.optimizer),
        lr=paper_value(lr, recipe.lr),
        momentum=getattr(recipe, "momentum", 0.9), nesterov=getattr(recipe, "nesterov", False),
        weight_decay=recipe.weight_decay, schedule="constant" if other_optimizer else recipe.schedule,
        warmup_epochs=recipe.warmup_epochs, milestones=tuple(recipe.milestones), gamma=recipe.gamma, amp=amp,
        eval_every=eval_every, seed=seed, device=device, out_dir=str(resolve(out_dir) / f"{method}_vcm"), resume=resume,
        progress=progress,
        identity=run_identity("vcm", 0, data_kind, data_sizes, transform, sampling,
                              {"method": method, "arch": arch, "num_classes": num_classes, "pretrained": pretrained,
                               "weights_file": weights_file, "backbone_lr_factor": backbone_lr_factor, **model_params}))
    params = dict(method=method, dataset="vcm", data_root=str(root), seq_len=seq_len, pretrained=pretrained,
                  weights_file=weights_file, checkpoint=checkpoint, workers=workers, synthetic_ids=synthetic_ids,
                  num_classes=num_classes, batches_per_epoch=batches_per_epoch, arch=arch,
                  backbone_lr_factor=getattr(model, "backbone_lr_factor", None), **model_params)
    run = VideoRun(method, "vcm", root, data_kind, reader, 0, model, criterion, loader, config, transform, params,
                   data_sizes=data_sizes)
    if checkpoint:
        run.load(checkpoint)
    return run
