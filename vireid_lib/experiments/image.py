"""An image-based paper run (SYSU-MM01 or RegDB), assembled from a paper's recipe.

The notebook of a paper calls :func:`prepare` with its parameters, then ``train()``,
``evaluate()`` and ``record()`` on what comes back. Everything a parameter leaves as ``None``
takes the paper's value from its recipe, and the resolved configuration is what the result
record stores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import RegDB, SYSUMM01
from ..data.cache import load_image_cache
from ..data.datasets import ImageDataset, PairedImageDataset
from ..data.records import INFRARED, VISIBLE
from ..data.samplers import CrossModalityIdentitySampler
from ..data.summary import summarise
from ..data.synthetic import SyntheticConfig, ensure_synthetic
from ..data.transforms import TransformConfig, build_test_transform, build_train_transform
from ..engine import TrainConfig
from ..eval import Evaluation, run_regdb, run_sysu
from ..models import AGWCriterion, AGWRecipe, IVReIDCriterion, IVReIDRecipe, agw, build_agw, build_ivreid, ivreid
from ..paths import resolve
from ..data import provenance
from .common import (SYNTHETIC_CAPTION, ExperimentError, PaperRun, resolve_device, run_identity, scaled_pad,
                     training_loader)
from .params import check_amp, check_parameters, paper_value

__all__ = ["DATASETS", "METHODS", "ExperimentError", "ImageRun", "prepare", "resolve_device"]


@dataclass(frozen=True)
class Method:
    paper: str
    build: object
    recipe: object
    criterion: object
    # How the official code resizes images: AGW caches Lanczos-resized training arrays once and
    # its TestData resizes test images with Lanczos too; the IV-ReID baseline resizes every image
    # on the fly with torchvision's bilinear Resize, in training and at test.
    cache_resample: str
    cache_training_images: bool
    # The authors' released checkpoints this paper can evaluate (see vireid_lib.models.official).
    layouts: tuple = ()
    # What a reader should know about where this network follows its official code.
    fidelity: str = ""


METHODS = {
    "ivreid": Method("IV-ReID baseline", build_ivreid, IVReIDRecipe(), IVReIDCriterion, "bilinear", False,
                     ivreid.OFFICIAL_LAYOUTS,
                     "The released ResNet-50 (`model/resnet.py`): no ReLU after the stem's BatchNorm and a bias on every "
                     "convolution, the network behind the published 46.3 / 44.2. `stem_relu=True` restores the usual "
                     "stem. Images are resized with bilinear filtering in training and at test, as the official code."),
    "agw": Method("AGW", build_agw, AGWRecipe(), AGWCriterion, "lanczos", True, agw.OFFICIAL_LAYOUTS,
                  "The official two-stream ResNet-50 with its 1-channel non-local blocks (the open PR #28 defect) and "
                  "fixed GeM p = 3. Training images are cached and test images resized with Lanczos, as the official "
                  "preprocessing and `TestData` do."),
}
DATASETS = ("sysu", "regdb")


@dataclass
class ImageRun(PaperRun):
    """Everything one image run needs; built by :func:`prepare`."""

    @property
    def paper(self) -> str:
        return METHODS[self.method].paper

    def summary(self) -> pd.DataFrame:
        return summarise(self.dataset, self.root, self.trial if self.dataset == "regdb" else None)

    def _protocols(self, quick: bool = False, extract=None) -> Evaluation:
        extract = extract or self.extractor()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unmatched indoor queries are part of the protocol
            if self.dataset == "sysu":
                if quick:
                    return run_sysu(self.reader, extract, modes=("all",), shots=(1,), trials=[0])
                return run_sysu(self.reader, extract, modes=("all", "indoor"), shots=(1, 10),
                                trials=range(self.params["eval_trials"]))
            return run_regdb(self.reader, lambda trial: extract, trials=[self.trial])

    @property
    def fidelity(self) -> str:
        return METHODS[self.method].fidelity

    def compare_with_paper(self) -> pd.DataFrame:
        """This run's summary beside the paper's reported numbers.

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
            rows.append(entry)
        table = pd.DataFrame(rows).dropna(axis=1, how="all")
        table.attrs["caption"] = (SYNTHETIC_CAPTION if not real else
                                  "Real data, last epoch, mean over trials; Δ = ours - paper.")
        return table

    def resize_effect(self) -> pd.DataFrame:
        """The first test setting scored with the official test-time resize and with the other filter
        (bilinear <-> Lanczos): how much the choice of filter alone moves the numbers."""
        from dataclasses import replace

        from ..engine import make_extractor

        official = self.transform.interpolation
        rows = []
        for interpolation in (official, "bilinear" if official == "lanczos" else "lanczos"):
            transform = replace(self.transform, interpolation=interpolation)
            extract = make_extractor(self.model, build_test_transform(transform), device=self.train_config.device,
                                     workers=self.params["workers"])
            row = self._protocols(quick=True, extract=extract).summary.iloc[0]
            rows.append({"test resize": interpolation + (" (official)" if interpolation == official else ""),
                         "setting": f"{row['protocol']}, {row['direction']}", "R1": row["R1"], "mAP": row["mAP"]})
        table = pd.DataFrame(rows)
        table.loc[1, "Δ R1"] = table.loc[1, "R1"] - table.loc[0, "R1"]
        table.loc[1, "Δ mAP"] = table.loc[1, "mAP"] - table.loc[0, "mAP"]
        return table

    def ranking_example(self):
        """(queries, gallery, distances, removed) of the first test setting, for ranked lists."""
        from ..eval import pairwise_distance

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            split = self.reader.split("all", 0) if self.dataset == "sysu" else self.reader.split(self.trial, "v2t")
        extract = self.extractor()
        distances = pairwise_distance(extract(split.query), extract(split.gallery)).numpy()
        removed = None
        if self.dataset == "sysu":  # what eval_sysu drops: camera 2 for camera-3 queries
            removed = (np.array([q.camid for q in split.query])[:, None] == 3) & (np.array([g.camid for g in split.gallery])[None, :] == 2)
        return split.query, split.gallery, distances, removed

    def activation_examples(self, count: int = 4):
        """Normalised test images (visible then infrared training images) and their maps."""
        from ..data.io import read_image
        from ..viz import activation_maps

        transform = build_test_transform(self.transform)
        visible, infrared = self.reader.train() if self.dataset == "sysu" else self.reader.train(self.trial)
        picks = {VISIBLE: visible[:: max(1, len(visible) // count)][:count], INFRARED: infrared[:: max(1, len(infrared) // count)][:count]}
        images, maps, titles = [], [], []
        for modality, records in picks.items():
            batch = torch.stack([transform(read_image(r.path)) for r in records]).to(self.train_config.device)
            images.append(batch.cpu())
            maps.append(activation_maps(self.model, batch, modality))
            titles += [f"{'VIS' if modality == VISIBLE else 'IR'} id {r.pid}" for r in records]
        return torch.cat(images), np.concatenate(maps), titles


def prepare(method: str = "ivreid", dataset: str = "sysu", data_root: str = "", trial: int = 1,
            epochs: int | None = None, lr: float | None = None, num_ids: int | None = None,
            num_per_modality: int | None = None, height: int | None = None, width: int | None = None,
            pretrained: bool = True, weights_file: str = "", checkpoint: str = "", device: str = "auto",
            amp: str = "off", seed: int | None = None, workers: int = 2, out_dir: str = "runs",
            eval_every: int = 0, eval_trials: int = 10, synthetic_ids: int = 40, resume: bool = True,
            progress: bool = True, batches_per_epoch: int | None = None, arch: str = "resnet50",
            optimizer: str | None = None, backbone_lr_factor: float | None = None,
            stem_relu: bool | None = None) -> ImageRun:
    """Build a run; ``None`` means the paper's value, an empty ``data_root`` the synthetic twin.

    ``arch`` other than "resnet50" and ``optimizer`` other than the paper's ("sgd" or "adam",
    with a constant lr when it is not the paper's) are for quick experiments, not reproductions;
    so is ``backbone_lr_factor`` (the backbone's lr relative to the head's, e.g. 1.0 from scratch).
    ``stem_relu`` (``None``: the paper's network) puts a ReLU after the stem or takes it away.
    A relative ``out_dir`` is taken in the workbook root (:mod:`vireid_lib.paths`).
    """
    if method not in METHODS:
        raise ExperimentError(f"method={method!r} is not known; use one of {sorted(METHODS)}.")
    if dataset not in DATASETS:
        raise ExperimentError(f"dataset={dataset!r} is not an image dataset; use one of {DATASETS}.")
    check_parameters(locals())
    device = resolve_device(device)
    check_amp(amp, device)
    paper = METHODS[method]
    recipe = paper.recipe
    height, width = paper_value(height, recipe.height), paper_value(width, recipe.width)
    root = Path(data_root) if data_root else ensure_synthetic(dataset, config=SyntheticConfig(ids=synthetic_ids))
    reader = SYSUMM01(root) if dataset == "sysu" else RegDB(root)
    data_kind, data_sizes = provenance.data_kind(dataset, root, reader, trial)
    visible, infrared = reader.train() if dataset == "sysu" else reader.train(trial)
    num_classes = len({r.pid for r in visible} | {r.pid for r in infrared})

    transform = TransformConfig(height=height, width=width, pad=scaled_pad(width, recipe.width), flip=True,
                                interpolation=paper.cache_resample)
    size = (transform.width, transform.height)
    if paper.cache_training_images:
        tag = f"{dataset}_t{trial}" if dataset == "regdb" else dataset
        cached = [load_image_cache(records, root, f"{tag}_{name}", size=size, resample=paper.cache_resample,
                                   progress=progress) for records, name in ((visible, "visible"), (infrared, "infrared"))]
    else:
        cached = [None, None]
    pairs = PairedImageDataset(
        ImageDataset(visible, build_train_transform(transform, VISIBLE), cached[0]),
        ImageDataset(infrared, build_train_transform(transform, INFRARED), cached[1]),
    )
    seed = paper_value(seed, getattr(recipe, "seed", 0))
    sampling = dict(num_ids=paper_value(num_ids, recipe.num_ids),
                    num_per_modality=paper_value(num_per_modality, recipe.num_per_modality),
                    replace=getattr(recipe, "replace", True), seed=seed,
                    epoch_length=paper_value(batches_per_epoch, "official"))  # a short epoch is for smoke runs only
    sampler = CrossModalityIdentitySampler([r.pid for r in visible], [r.pid for r in infrared], **sampling)
    loader = training_loader(pairs, sampler, workers, device)
    torch.manual_seed(seed)  # the initial weights are part of the run: same seed, same model
    options = {} if stem_relu is None else {"stem_relu": stem_relu}
    model = paper.build(num_classes, pretrained=pretrained and not weights_file, weights_file=weights_file or None,
                        arch=arch, **options)
    if backbone_lr_factor is not None:
        if not hasattr(model, "backbone_lr_factor"):
            raise ExperimentError(f"backbone_lr_factor does not apply to {paper.paper}: its backbone already trains at "
                                  "the base lr; leave it None.")
        model.backbone_lr_factor = backbone_lr_factor
    criterion = (paper.criterion(num_classes, margin=recipe.margin(dataset)) if method == "ivreid"
                 else paper.criterion(num_classes))
    constant = getattr(recipe, "schedule", "warmup_step") == "constant" or optimizer not in (None, recipe.optimizer)
    run_dir = resolve(out_dir) / f"{method}_{dataset}" / (f"trial{trial}" if dataset == "regdb" else "all")
    config = TrainConfig(
        epochs=paper_value(epochs, recipe.epochs), optimizer=paper_value(optimizer, recipe.optimizer),
        lr=paper_value(lr, recipe.lr),
        momentum=getattr(recipe, "momentum", 0.9), nesterov=getattr(recipe, "nesterov", False),
        weight_decay=recipe.weight_decay, schedule="constant" if constant else "warmup_step",
        warmup_epochs=getattr(recipe, "warmup_epochs", 0), milestones=tuple(getattr(recipe, "milestones", ())),
        gamma=getattr(recipe, "gamma", 0.1), amp=amp, eval_every=eval_every, seed=seed, device=device,
        out_dir=str(run_dir), resume=resume, progress=progress,
        identity=run_identity(dataset, trial, data_kind, data_sizes, transform, sampling,
                              {"method": method, "arch": arch, "num_classes": num_classes, "pretrained": pretrained,
                               "weights_file": weights_file, "stem_relu": stem_relu,
                               "backbone_lr_factor": backbone_lr_factor}))
    params = dict(method=method, dataset=dataset, data_root=str(root), trial=trial, pretrained=pretrained,
                  weights_file=weights_file, checkpoint=checkpoint, workers=workers, eval_trials=eval_trials,
                  synthetic_ids=synthetic_ids, num_classes=num_classes, batches_per_epoch=batches_per_epoch, arch=arch,
                  backbone_lr_factor=getattr(model, "backbone_lr_factor", None),
                  stem_relu=not isinstance(model.backbone.stem_of("visible").relu, torch.nn.Identity))
    run = ImageRun(method, dataset, root, data_kind, reader, trial, model, criterion, loader, config, transform, params,
                   official_layouts=paper.layouts, data_sizes=data_sizes)
    if checkpoint:
        run.load(checkpoint)
    return run
