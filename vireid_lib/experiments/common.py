"""What every paper run shares, image or video: training, loading, evaluating, recording."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..data.transforms import TransformConfig, build_test_transform
from ..engine import TrainConfig, TrainResult, make_extractor, train
from ..engine.checkpoint import load_checkpoint, load_model_state
from ..eval import Evaluation
from ..results import RunInfo, make_record, reported_numbers, write_record


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
    train_result: TrainResult | None = None
    evaluation: Evaluation | None = None
    durations: dict = field(default_factory=dict)

    @property
    def paper(self) -> str:  # pragma: no cover - every subclass names its papers
        raise NotImplementedError

    def _protocols(self, quick: bool = False) -> Evaluation:  # pragma: no cover - per dataset
        raise NotImplementedError

    def extractor(self, batch_size: int = 64):
        return make_extractor(self.model, build_test_transform(self.transform), device=self.train_config.device,
                              batch_size=batch_size, workers=self.params["workers"],
                              seq_len=self.params.get("seq_len", 6))

    def train(self) -> TrainResult:
        def quick_eval(model) -> dict:
            row = self._protocols(quick=True).summary.iloc[0]
            return {"mAP": row["mAP"], "R1": row["R1"]}

        start = time.perf_counter()
        self.train_result = train(self.model, self.criterion, self.loader, self.train_config,
                                  evaluate_fn=quick_eval if self.train_config.eval_every else None)
        self.durations["train_s"] = round(time.perf_counter() - start, 1)
        return self.train_result

    def load(self, checkpoint: str | Path) -> None:
        """Evaluate a saved checkpoint instead of training (its model must match this run's)."""
        state = load_checkpoint(checkpoint)
        load_model_state(self.model, state["model"], str(checkpoint))
        self.model.to(self.train_config.device)

    def evaluate(self) -> Evaluation:
        start = time.perf_counter()
        self.evaluation = self._protocols()
        self.durations["eval_s"] = round(time.perf_counter() - start, 1)
        return self.evaluation

    def reported(self, methods: tuple[str, ...] | None = None) -> pd.DataFrame:
        """The papers' reported rows for this dataset (``methods``: default this run's method)."""
        wanted = methods or (self.method,)
        rows = [r for r in reported_numbers() if r["method"] in wanted and r["dataset"] == self.dataset]
        return pd.DataFrame(rows)

    def record(self, results_dir: str | Path = "results") -> Path:
        best = None
        if self.train_result is not None and self.train_result.best_epoch is not None:
            best = {"epoch": self.train_result.best_epoch, "metrics": self.train_result.best_metrics,
                    "note": "best-on-test, as the official scripts select it; the rows report the last epoch"}
        checkpoint = self.train_result.checkpoint if self.train_result else self.params.get("checkpoint") or None
        run = RunInfo(self.paper, self.method, self.dataset, self.data_kind,
                      {"params": self.params, "train": self.train_config.to_dict(), "transform": asdict(self.transform)},
                      device=self.train_config.device, durations=self.durations, checkpoint=checkpoint, best_on_test=best)
        return write_record(make_record(run, self.evaluation), results_dir)


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
