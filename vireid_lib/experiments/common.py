"""What every paper run shares, image or video: training, loading, evaluating, recording."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..data.transforms import TransformConfig, build_test_transform
from ..engine import TrainConfig, TrainResult, make_extractor, train
from ..engine.checkpoint import LoadedWeights, load_checkpoint, load_model_state, load_weights
from ..eval import Evaluation
from ..models.official import OfficialLayout
from ..papers import BatchLayout, Paper, Recipe, Variant
from ..paths import resolve
from ..results import RunInfo, make_record, reported_numbers, write_record

# Chance level: the protocol scored on random features, averaged over this many draws.
CHANCE_DRAWS = 5
SYNTHETIC_CAPTION = ("Synthetic data: the paper's numbers are shown for orientation only. No difference is "
                     "computed, because a model trained on the generated twin says nothing about the paper.")


class ExperimentError(ValueError):
    """A notebook parameter is invalid; the message names it and the valid values."""


@dataclass
class PaperRun:
    """Everything one run needs; subclasses add the dataset's protocols and pictures."""

    method: str
    dataset: str
    root: Path
    data_kind: str
    reader: object
    trial: int
    model: torch.nn.Module
    criterion: torch.nn.Module
    loader: DataLoader
    train_config: TrainConfig
    transform: TransformConfig
    params: dict
    declaration: Paper | None = None  # the paper's declaration (vireid_lib.papers)
    recipe: Recipe | None = None  # its recipe with this run's overrides
    test_transform: TransformConfig | None = None
    train_result: TrainResult | None = None
    evaluation: Evaluation | None = None
    untrained: Evaluation | None = None
    best_evaluation: Evaluation | None = None  # every protocol scored with the best-on-test checkpoint
    loaded: LoadedWeights | None = None
    chance_level: pd.DataFrame | None = None
    data_sizes: dict = field(default_factory=dict)
    durations: dict = field(default_factory=dict)
    # Made on the run's device from each loader batch before unpacking (TrainConfig.augment="device").
    batch_transform: Callable | None = None

    @property
    def paper(self) -> str:
        """The paper's title, as tables print it."""
        return self.declaration.title

    @property
    def fidelity(self) -> str:
        """Where this network follows (or departs from) the official code."""
        return self.declaration.fidelity

    @property
    def official_layouts(self) -> tuple[OfficialLayout, ...]:
        return tuple(self.declaration.layouts)

    @property
    def variants(self) -> dict[str, Variant]:
        """The test-feature variants the paper reports; the first is the one its tables use."""
        return dict(self.declaration.variants)

    @property
    def run_dir(self) -> Path:
        """Where this run's checkpoints, log and figures are written."""
        return Path(self.train_config.out_dir)

    def _protocols(self, quick: bool = False, extract=None, metric: str = "cosine") -> Evaluation:  # pragma: no cover
        raise NotImplementedError

    def extractor(self, variant: str | None = None, batch_size: int = 64, transform: TransformConfig | None = None):
        """records -> test features of ``variant`` (default: the reported one), with the paper's test resize."""
        output = self.variants[variant or next(iter(self.variants))].output
        config = transform or self.test_transform or self.transform
        return make_extractor(self.model, build_test_transform(config),
                              device=self.train_config.device, batch_size=batch_size, workers=self.params["workers"],
                              seq_len=self.params.get("seq_len", 6), output=output,
                              skeletons=self.params.get("skeleton_store") or None,
                              channels_last=self.train_config.channels_last, amp=self.train_config.amp,
                              cache=True, size=(config.height, config.width))

    @property
    def batch(self) -> BatchLayout:
        """How this run's training batches are composed (the paper's layout for this dataset)."""
        return self.declaration.batch_for(self.dataset)

    def selection_test(self, model=None) -> dict:
        """The model-selection test the trainer runs during training: the first setting, on as many galleries
        as the paper's script uses (``selection_trials``); ``{"mAP", "R1"}``. ``model`` is ignored (it is the
        run's own; the argument makes this the trainer's ``evaluate_fn``)."""
        row = self._score(quick=True).summary.iloc[0]
        return {"mAP": row["mAP"], "R1": row["R1"]}

    def train(self) -> TrainResult:
        hook = self.declaration.hooks.on_epoch_start

        def epoch_start(epoch: int) -> None:
            began = time.perf_counter()
            hook(self, epoch)
            self.durations["epoch_start_s"] = round(self.durations.get("epoch_start_s", 0.0) + time.perf_counter() - began, 2)

        start = time.perf_counter()
        self.train_result = train(self.model, self.criterion, self.loader, self.train_config,
                                  evaluate_fn=self.selection_test if self.train_config.eval_every else None,
                                  unpack=self.batch.unpack, on_epoch_start=epoch_start if hook else None,
                                  batch_transform=self.batch_transform)
        self.durations["train_s"] = round(time.perf_counter() - start, 1)
        return self.train_result

    def load(self, checkpoint: str | Path) -> LoadedWeights:
        """Evaluate saved weights instead of training: a vireid checkpoint, a state dict, or the
        authors' released file in one of this paper's official layouts (mapped, strictly)."""
        self.loaded = load_weights(self.model, checkpoint, self.official_layouts)
        self.model.to(self.train_config.device)
        return self.loaded

    def evaluate(self) -> Evaluation:
        """Every protocol of the dataset, scored with the paper's reported test-feature variant."""
        start = time.perf_counter()
        self.evaluation = self._score()
        self.durations["eval_s"] = round(time.perf_counter() - start, 1)
        return self.evaluation

    def _score(self, variant: str | None = None, quick: bool = False) -> Evaluation:
        name = variant or next(iter(self.variants))
        return self._protocols(quick=quick, extract=self.extractor(name), metric=self.variants[name].metric)

    def evaluate_best(self) -> Evaluation | None:
        """Every protocol scored with the best-on-test checkpoint: the epoch the paper's own script keeps
        (by mAP on its model-selection test). ``None`` when training selected none (no evaluation during
        training). The model is put back to its last-epoch weights afterwards."""
        path = self.train_result.best_checkpoint if self.train_result is not None else None
        if path is None or not Path(path).is_file():
            return None
        last = {k: v.clone() for k, v in self.model.state_dict().items()}
        load_model_state(self.model, load_checkpoint(path)["model"], str(path))
        try:
            self.best_evaluation = self._score()
        finally:
            self.model.load_state_dict(last)
        return self.best_evaluation

    def last_and_best(self) -> pd.DataFrame:
        """Last-epoch and best-on-test R1 / mAP / mINP side by side, one row per protocol and direction."""
        if self.evaluation is None:
            raise ExperimentError("evaluate() the run before comparing its last and best-on-test epochs.")
        keys, metrics = ["protocol", "direction"], ["R1", "mAP", "mINP"]
        epochs = len(self.train_result.history) if self.train_result else None
        table = self.evaluation.summary[keys + metrics].rename(columns={m: f"{m} last (epoch {epochs})" for m in metrics})
        if self.best_evaluation is not None:
            best = self.best_evaluation.summary[keys + metrics].rename(
                columns={m: f"{m} best-on-test (epoch {self.train_result.best_epoch})" for m in metrics})
            table = table.merge(best, on=keys)
        table.attrs["caption"] = ("last: the weights after the final epoch (the workbook's result); best-on-test: the "
                                  "epoch the official script keeps, chosen by mAP on the test set itself, so optimistic")
        return table

    def evaluate_variants(self) -> pd.DataFrame:
        """R1 / mAP / mINP of every protocol for each test-feature variant the paper declares."""
        rows = []
        for name, variant in self.variants.items():
            for _, row in self._score(name).summary.iterrows():
                rows.append({"variant": name, "protocol": row["protocol"], "direction": row["direction"],
                             "R1": row["R1"], "mAP": row["mAP"], "mINP": row["mINP"], "what": variant.description})
        table = pd.DataFrame(rows)
        table.attrs["caption"] = f"the first variant ({next(iter(self.variants))}) is the one the tables report"
        return table

    def paper_figure(self, name: str, **options):
        """One of the figures only this paper has (its declaration's ``figures``)."""
        if name not in self.declaration.figures:
            raise ExperimentError(f"{self.paper} has no figure {name!r}; it has {sorted(self.declaration.figures)}.")
        return self.declaration.figures[name](self, **options)

    def score_untrained(self) -> Evaluation:
        """Every protocol scored with the model as it is now (before training): the floor training must lift."""
        self.untrained = self._score()
        return self.untrained

    def chance(self, draws: int = CHANCE_DRAWS, seed: int = 0) -> pd.DataFrame:
        """Every protocol scored on random features (mean over ``draws``): what retrieval gives by luck alone."""
        rng = np.random.default_rng(seed)
        tables = [self._protocols(extract=lambda records: rng.standard_normal((len(records), 32))).summary
                  for _ in range(draws)]
        keys = ["protocol", "direction"]
        self.chance_level = pd.concat(tables).groupby(keys, sort=False)[["R1", "mAP", "mINP"]].mean().reset_index()
        return self.chance_level

    def learning_summary(self) -> pd.DataFrame:
        """Untrained, trained and chance R1 / mAP side by side, one row per protocol and direction."""
        if self.evaluation is None:
            raise ExperimentError("evaluate() the run before asking for its learning summary.")
        keys = ["protocol", "direction"]
        table = self.evaluation.summary[keys + ["R1", "mAP"]].rename(columns={"R1": "R1 trained", "mAP": "mAP trained"})
        if self.untrained is not None:
            before = self.untrained.summary[keys + ["R1", "mAP"]].rename(columns={"R1": "R1 untrained", "mAP": "mAP untrained"})
            table = table.merge(before, on=keys)
        chance = self.chance().rename(columns={"R1": "R1 chance", "mAP": "mAP chance"})[keys + ["R1 chance", "mAP chance"]]
        table = table.merge(chance, on=keys)
        order = keys + [f"{m} {s}" for m in ("R1", "mAP") for s in ("untrained", "trained", "chance") if f"{m} {s}" in table]
        return table[order]

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the network and of the criterion's own layers (a projection head, an adversary)."""
        return {"network": sum(p.numel() for p in self.model.parameters()),
                "criterion": sum(p.numel() for p in self.criterion.parameters())}

    def figure(self, fig, name: str):
        """Save ``fig`` as ``<run dir>/figures/<name>.png`` and return it (for the notebook to show)."""
        folder = self.run_dir / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        return fig

    def reported(self, methods: tuple[str, ...] | None = None) -> pd.DataFrame:
        """The papers' reported rows for this dataset (``methods``: default this run's method)."""
        wanted = methods or tuple(self.declaration.compared) or (self.method,)
        rows = [r for r in reported_numbers() if r["method"] in wanted and r["dataset"] == self.dataset]
        return pd.DataFrame(rows)

    def record(self, results_dir: str | Path = "results") -> Path:
        """Write this run's result record; a relative ``results_dir`` is taken in the workbook root."""
        best = None
        if self.train_result is not None and self.train_result.best_epoch is not None:
            best = {"epoch": self.train_result.best_epoch, "metrics": self.train_result.best_metrics,
                    "note": "best-on-test, as the official scripts select it; the rows report the last epoch",
                    "selected_by": {"metric": "mAP", "every": self.train_config.eval_every,
                                    "first": self.train_config.eval_first,
                                    "selection_trials": getattr(self.recipe, "selection_trials", 1)}}
            if self.best_evaluation is not None:
                best["rows"] = self.best_evaluation.summary.to_dict(orient="records")
        checkpoint = self.train_result.checkpoint if self.train_result else self.params.get("checkpoint") or None
        extra = {"parameters": self.parameter_counts()}
        if self.untrained is not None:
            extra["untrained"] = self.untrained.summary.to_dict(orient="records")
        if self.chance_level is not None:
            extra["chance"] = self.chance_level.to_dict(orient="records")
        if self.loaded is not None:
            extra["weights"] = asdict(self.loaded)
        train = self.train_config.to_dict()
        if self.loaded is not None:
            # The settings that produced the weights, not this notebook's: a vireid checkpoint carries them; the
            # authors' files were trained by their own code (what they store is under "weights").
            train = self.loaded.config or {"trained_by": self.loaded.kind, "epochs": self.loaded.epoch}
            extra["evaluated_with"] = self.train_config.to_dict()
        run = RunInfo(self.paper, self.method, self.dataset, self.data_kind,
                      {"params": self.params, "train": train, "transform": asdict(self.transform)},
                      device=self.train_config.device, durations=self.durations, checkpoint=checkpoint, best_on_test=best,
                      data_sizes=self.data_sizes, trial=self.trial if self.dataset == "regdb" else None,
                      identity=identity_hash(self.train_config.identity, self.train_config.to_dict()), extra=extra)
        return write_record(make_record(run, self.evaluation), resolve(results_dir))


def run_identity(dataset: str, trial: int, data_kind: str, data_sizes: dict, transform: TransformConfig,
                 sampling: dict, model: dict) -> dict:
    """What makes a run this run besides its training configuration: the data (by its split sizes,
    not its path, so a moved dataset still resumes), the transforms, the sampler and the model.
    It travels in every checkpoint; resuming with any field changed is an error naming it."""
    return {"data": {"dataset": dataset, "trial": trial, "kind": data_kind, "sizes": dict(data_sizes)},
            "transform": asdict(transform), "sampler": dict(sampling), "model": dict(model)}


def identity_hash(identity: dict, train: dict) -> str:
    """A short stable hash of a run's identity and training configuration (for record names)."""
    import hashlib
    import json

    keep = {k: v for k, v in train.items() if k not in ("out_dir", "resume", "progress", "device", "identity")}
    text = json.dumps({"identity": identity, "train": keep}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def training_loader(dataset, sampler, workers: int, device: str) -> DataLoader:
    """The training DataLoader of a run: the sampler's batches, ``workers`` loader processes.

    Workers are started afresh every epoch (not persistent): each epoch's loader draws its base
    seed from the main process's generator, which the trainer seeds from (run seed, epoch), and
    every worker seeds its own generators from that base. So an epoch's augmentations depend
    on the run's seed and the epoch only, and a run resumed after epoch k draws exactly what
    the uninterrupted run drew, whatever ``workers`` is. (Persistent workers would carry their
    random streams over from earlier epochs, which a resumed run cannot reproduce.)
    """
    return DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, num_workers=workers,
                      persistent_workers=False, pin_memory=device.startswith("cuda"))


def scaled_pad(width: int, paper_width: int, paper_pad: int = 10) -> int:
    """The papers' 10-pixel crop padding, scaled with the input width (10 at the paper's size).

    At a smoke-test size such as 32 pixels wide, 10 pixels would be a third of the image.
    """
    return max(1, round(paper_pad * width / paper_width))


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExperimentError(f"device={device!r} but no CUDA device is visible; use 'cpu' or 'auto'.")
    return device
