"""What every paper run shares, image or video: training, loading, evaluating, recording."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..benchmarks import Benchmark, benchmark, benchmarks
from ..data.transforms import TransformConfig, build_test_transform
from ..engine import TrainConfig, TrainResult, make_extractor, train
from ..engine.checkpoint import LoadedWeights, load_checkpoint, load_model_state, load_weights, read_torch_file
from ..eval import Evaluation
from ..models.official import OfficialLayout
from ..interface import BatchLayout, Paper, Recipe, Variant
from ..selection import KEEP_METRICS, Selection
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
    # What the run reports (evaluate()): every protocol scored with the checkpoint the run's selection picks for
    # each direction (the official script's, or the last epoch with selection="last"); each row says which.
    evaluation: Evaluation | None = None
    last_evaluation: Evaluation | None = None  # every protocol scored with the last epoch's weights
    selected_evaluations: dict[str, Evaluation] = field(default_factory=dict)  # per kept checkpoint
    untrained: Evaluation | None = None
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

    @property
    def benchmark(self) -> Benchmark:
        """The dataset's declaration (:mod:`vireid_lib.benchmarks`): its protocols, rule and trials."""
        return benchmark(self.dataset)

    def _protocols(self, extract=None, metric: str = "cosine") -> Evaluation:
        """Every protocol the dataset reports, as its official test runs them."""
        return self.benchmark.report(self.reader, extract or self.extractor(), self.trial,
                                     self.params.get("eval_trials", self.benchmark.gallery_trials), metric)

    def _selection_protocols(self, extract, metric: str) -> Evaluation:
        """The official script's selection test (the recipe's ``selection_rule``) on this dataset."""
        return self.benchmark.select(self.reader, extract, self.selection_rule, self.trial, metric)

    def supplementary(self) -> Evaluation | None:
        """The dataset's other official test settings (its benchmark's ``supplementary``: BUPTCampus's same-modality
        and ``all`` pairings) with the model's current weights and the reported test feature; None where there are
        none."""
        if self.benchmark.supplementary is None:
            return None
        name = next(iter(self.variants))  # the feature the paper's tables use
        return self.benchmark.supplementary(self.reader, self.extractor(name), self.trial, self.variants[name].metric)

    def show_other_settings(self, others: tuple = ()) -> None:
        """The dataset's other official test settings (:meth:`supplementary`) of this run and ``others``, a table
        each, or one line saying the dataset has none."""
        from IPython.display import Markdown, display

        from ..viz import table

        for finished in (self, *others):
            extra = finished.supplementary()
            if extra is None:
                display(Markdown(f"{finished.dataset_name} has no other official test setting."))
                return
            display(table(extra.readable(), caption=f"{finished.paper}, last epoch"))

    def ranking_example(self, direction: str | None = None):
        """(queries, gallery, distances, removed) of the dataset's first test setting (or of ``direction``), for
        ranked lists; ``removed`` marks what the dataset's rule takes out of each query's list."""
        from ..eval import pairwise_distance

        split = self.benchmark.example(self.reader, self.trial, direction)
        extract, metric = self.extractor(), next(iter(self.variants.values())).metric
        distances = pairwise_distance(extract(split.query), extract(split.gallery), metric).numpy()
        return split.query, split.gallery, distances, self.benchmark.removed(split.query, split.gallery)

    def extractor(self, variant: str | None = None, batch_size: int = 64, transform: TransformConfig | None = None):
        """records -> test features of ``variant`` (default: the reported one), with the paper's test resize."""
        chosen = self.variants[variant or next(iter(self.variants))]
        config = transform or self.test_transform or self.transform
        return make_extractor(self.model, build_test_transform(config),
                              device=self.train_config.device, batch_size=batch_size, workers=self.params["workers"],
                              seq_len=self.params.get("seq_len", 6), output=chosen.output, flip=chosen.flip,
                              skeletons=self.params.get("skeleton_store") or None,
                              channels_last=self.train_config.channels_last, amp=self.train_config.amp,
                              cache=True, size=(config.height, config.width), test_frames=self.recipe.test_frames,
                              frame_seed=self.recipe.seed)

    @property
    def batch(self) -> BatchLayout:
        """How this run's training batches are composed (the paper's layout for this dataset)."""
        return self.declaration.batch_for(self.dataset, self.recipe)

    @property
    def selection_rule(self) -> Selection:
        """How the paper's official script picks the checkpoint it reports (its declaration)."""
        return self.recipe.selection_rule

    def selection_test(self, model=None) -> dict:
        """The test the official script runs during training to pick its checkpoint (the recipe's
        ``selection_rule``): ``{"<direction> <metric>": value}`` for every direction it scores and
        R1 / R5 / R10 / R20 / mAP / mINP, and the bare metric names for its first direction. ``model`` is
        ignored (it is the run's own; the argument makes this the trainer's ``evaluate_fn``)."""
        name = self.selection_variant
        evaluation = self._selection_protocols(self.extractor(name), self.variants[name].metric)
        return selection_scores(evaluation)

    @property
    def selection_variant(self) -> str:
        """The test feature of the selection test: the rule's ``variant``, else the reported (first) one."""
        name = self.selection_rule.variant or next(iter(self.variants))
        if name not in self.variants:
            raise ExperimentError(f"the selection rule's variant={name!r} is not among {self.paper}'s test features "
                                  f"{tuple(self.variants)}.")
        return name

    def describe_selection(self) -> str:
        """What this run reports, in one sentence for the notebook: which checkpoint, chosen how."""
        rule = self.selection_rule
        if self.loaded is not None:
            return f"the loaded weights ({self.loaded.kind}); no selection."
        if not rule.keeps:
            return "the last epoch: the official script keeps no checkpoint chosen on the test set."
        official = rule.describe(self.benchmark.describe_selection(rule), self.train_config.epochs)
        if self.recipe.selection == "last":
            return (f"the last epoch (`selection='last'`). The official script instead keeps {official}: it chooses "
                    "on the test set itself, so its numbers are optimistic.")
        return (f"the checkpoint the official script keeps: {official}. It is chosen on the test set itself (the "
                "paper's own practice, so optimistic); `selection='last'` reports the last epoch instead.")

    def deviations(self) -> pd.DataFrame:
        """Every documented difference between the paper's code and the workbook, and which behaviour this run has:
        a switch counts as flipped when its recipe field differs from the paper's default for this dataset."""
        default = self.declaration.recipe_for(self.dataset)
        rows = []
        for deviation in (d for d in self.declaration.deviations if d.applies_to(self.dataset)):
            names = [part.split("=")[0].strip() for part in deviation.flag.split(",") if part.strip()]
            if not names or not all(hasattr(self.recipe, name) for name in names):
                state = "the workbook's (no switch)" if deviation.default == "workbook" else "as the code (no switch)"
            else:
                value = ", ".join(f"{name}={getattr(self.recipe, name)!r}" for name in names)
                flipped = any(getattr(self.recipe, name) != getattr(default, name) for name in names)
                if deviation.default == "official":
                    state = f"changed ({value})" if flipped else f"as the code ({value})"
                else:
                    state = f"as the code ({value})" if flipped else f"the workbook's ({value})"
            rows.append({"difference from the code": deviation.what, "switch": deviation.flag or "none",
                         "this run": state})
        frame = pd.DataFrame(rows, columns=["difference from the code", "switch", "this run"])
        frame.attrs["caption"] = (f"{self.paper}: the code's defects are the defaults (they produced the paper's "
                                  "numbers); each switch holds the fix")
        return frame

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
        authors' released file in one of this paper's official layouts (mapped, strictly).

        What the file says it is must be this run: a vireid checkpoint of another paper, network or number of
        classes is an error naming both, and one trained on another dataset or RegDB trial (an authors' file whose
        name says so too) is an error unless ``cross_dataset`` was asked for (the record then says so; the model
        is rebuilt with the checkpoint's classes)."""
        path = Path(checkpoint)
        content = read_torch_file(path)
        saved = content.get("config", {}).get("identity") if isinstance(content, dict) else None
        self._check_fits(path, saved)
        self.loaded = load_weights(self.model, path, self.official_layouts, content=content)
        self.model.to(self.train_config.device)
        return self.loaded

    def _check_fits(self, path: Path, saved: dict | None) -> None:
        cross = bool(self.params.get("cross_dataset"))
        if saved is None:  # the authors' files: their names say the dataset and trial (regdb_..._trial_3_best.t)
            name = path.name.lower()
            said = next((d for d in benchmarks() if d in name), None)
            trial = re.search(r"trial_?(\d+)", name)
            trained = self.benchmark.training_trials
            other = (said not in (None, self.dataset), trained and trial and int(trial[1]) != self.trial)
            if any(other) and not cross:
                raise ExperimentError(
                    f"checkpoint {path.name} is named for {said or self.dataset}"
                    f"{' trial ' + trial[1] if trial else ''}, but this run evaluates {self.dataset}"
                    f"{' trial ' + str(self.trial) if trained else ''}: a model is scored on the data "
                    "it was trained for. Pass that dataset / trial, or cross_dataset=True to test it on other data on "
                    "purpose (the record says so).")
            return
        data, model = saved.get("data", {}), saved.get("model", {})
        built = {"method": self.method, "arch": self.recipe.arch, "classes": self.params["num_classes"]}
        theirs = {"method": model.get("method"), "arch": (model.get("recipe") or {}).get("arch"),
                  "classes": model.get("num_classes")}
        theirs_trials = data.get("dataset") in benchmarks() and benchmark(data["dataset"]).training_trials
        where = (data.get("dataset"), data.get("trial") if theirs_trials else None)
        here = (self.dataset, self.benchmark.run_trial(self.trial))
        if where != here and not cross:
            raise ExperimentError(
                f"checkpoint {path} was trained on {where[0]}{f' trial {where[1]}' if where[1] else ''}, but this run "
                f"evaluates {here[0]}{f' trial {here[1]}' if here[1] else ''}"
                f"{f' (each {self.benchmark.name} trial tests identities other trials train on)' if where[0] == here[0] else ''}. "
                "Evaluate it on its own data, or pass cross_dataset=True to test it on other data on purpose (the "
                "record says so).")
        if where != here and theirs["classes"] != built["classes"] and theirs["method"] == built["method"]:
            self._rebuild(theirs["classes"])  # test features need no classifier, but the strict load needs its shape
            built["classes"] = theirs["classes"]
        wrong = {k: (theirs[k], built[k]) for k in built if theirs[k] is not None and theirs[k] != built[k]}
        if wrong:
            raise ExperimentError(
                f"checkpoint {path} holds {', '.join(f'{k} {v[0]}' for k, v in wrong.items())}; this run builds "
                f"{', '.join(f'{k} {v[1]}' for k, v in wrong.items())}. Evaluate it with the settings it was trained "
                f"with (method={theirs['method']!r}, arch={theirs['arch']!r}, dataset={where[0]!r}"
                f"{f', trial={where[1]}' if where[1] else ''}).")

    def _rebuild(self, classes: int) -> None:
        self.model = self.declaration.build(classes, self.recipe, {"pretrained": False, "weights_file": None})
        self.params["checkpoint_classes"] = classes

    def settings(self) -> dict:
        """Whether this run's numbers come from the paper's settings, and every field that differs.

        Paper settings: every recipe field at the declaration's value for the dataset (the seed aside: another
        seed is another draw of the same setting), the epochs all trained, torchvision's ImageNet backbone, the
        official epoch length, SYSU-MM01's ten galleries, the run's own data. The authors' released weights are
        the paper's by definition. Only paper-setting runs on real data reach the README's reproduced column."""
        paper = _flat(asdict(self.declaration.recipe_for(self.dataset)))
        if self.loaded is not None and self.loaded.kind not in ("vireid checkpoint", "state dict"):
            differs = {}
        elif self.loaded is not None and self.loaded.kind == "state dict":
            differs = {"weights": {"paper": "trained by the recipe", "run": "a state dict of unknown training"}}
        else:
            made = (self.loaded.config or {}).get("identity", {}) if self.loaded is not None else self.train_config.identity
            recipe = dict(made.get("model", {}).get("recipe") or {})
            recipe["epochs"] = (self.loaded.config or {}).get("epochs") if self.loaded is not None else self.recipe.epochs
            differs = {k: {"paper": v, "run": _flat(recipe).get(k, "?")} for k, v in paper.items()
                       if k not in VARIES and _flat(recipe).get(k, "?") != v}
            if self.last_epoch != paper["epochs"]:
                differs["epochs trained"] = {"paper": paper["epochs"], "run": self.last_epoch}
            model = made.get("model", {})
            if not model.get("pretrained", True):
                differs["pretrained"] = {"paper": "ImageNet", "run": "random initialisation"}
            elif model.get("weights_file") and not _imagenet_file(model["weights_file"], str(recipe.get("arch"))):
                differs["weights_file"] = {"paper": "torchvision's ImageNet file", "run": model["weights_file"]}
            length = made.get("sampler", {}).get("epoch_length")
            if isinstance(length, int):
                differs["batches_per_epoch"] = {"paper": "the official epoch", "run": length}
        galleries = self.benchmark.gallery_trials
        if galleries > 1 and self.params.get("eval_trials", galleries) != galleries:
            differs["eval_trials"] = {"paper": galleries, "run": self.params["eval_trials"]}
        if self.params.get("cross_dataset") and self.loaded is not None:
            differs["cross_dataset"] = {"paper": False, "run": True}
        label = ", ".join(f"{k} {v['run']} (paper {v['paper']})" for k, v in differs.items()) or (
            "the authors' released weights" if self.loaded is not None and not self.loaded.config and not differs
            else "paper settings")
        return {"paper": not differs, "differs": differs, "label": label}

    def evaluate(self) -> Evaluation:
        """Every protocol of the dataset, scored with the paper's reported test-feature variant: with the last
        epoch's weights (``last_evaluation``), with every checkpoint the official rule kept
        (``selected_evaluations``), and, as the result, each direction's rows from the checkpoint the run
        reports for it (``evaluation``: the script's, or the last epoch with ``selection="last"``). The model
        holds its last-epoch weights afterwards."""
        start = time.perf_counter()
        self.last_evaluation = _labelled(self._score(), "loaded" if self.loaded is not None else "last", self.last_epoch)
        self.selected_evaluations = {}
        if self.recipe.selection != "last":
            self._score_selected()
        self.evaluation = self._reported()
        self.durations["eval_s"] = round(time.perf_counter() - start, 1)
        return self.evaluation

    @property
    def last_epoch(self) -> int | None:
        """How many epochs the evaluated weights trained (the loaded checkpoint's, when one was loaded)."""
        if self.train_result is not None:
            return len(self.train_result.history)
        return self.loaded.epoch if self.loaded is not None else None

    def _score(self, variant: str | None = None) -> Evaluation:
        name = variant or next(iter(self.variants))
        return self._protocols(extract=self.extractor(name), metric=self.variants[name].metric)

    def _score_selected(self) -> None:
        """Every kept checkpoint scored on every protocol (two keeps of one epoch share the work); the model gets
        its last-epoch weights back."""
        selected = self.train_result.selected if self.train_result is not None else {}
        if not selected:
            return
        last = {k: v.clone() for k, v in self.model.state_dict().items()}
        by_epoch: dict[int, Evaluation] = {}
        try:
            for name, entry in selected.items():
                if entry["epoch"] not in by_epoch:
                    path = Path(entry["checkpoint"])
                    state = load_checkpoint(path)
                    if int(state.get("epoch", -1)) + 1 != entry["epoch"]:
                        raise ExperimentError(f"{path} holds epoch {int(state.get('epoch', -1)) + 1}, but the run kept "
                                              f"epoch {entry['epoch']} as {name!r}; it was overwritten. Rerun with "
                                              "resume=False, or report the last epoch (selection='last').")
                    load_model_state(self.model, state["model"], str(path))
                    by_epoch[entry["epoch"]] = self._score()
                self.selected_evaluations[name] = _labelled(by_epoch[entry["epoch"]], name, entry["epoch"])
        finally:
            self.model.load_state_dict(last)

    def _reported(self) -> Evaluation:
        """Each direction's rows from the checkpoint the run reports for it."""
        parts = []
        for direction in dict.fromkeys(self.last_evaluation.summary["direction"]):
            keep = self.selection_rule.keep_for(direction)
            source = self.selected_evaluations.get(keep.name) if keep is not None else None
            parts.append(_direction(source or self.last_evaluation, direction))
        return Evaluation(pd.concat([p.summary for p in parts], ignore_index=True),
                          pd.concat([p.per_trial for p in parts], ignore_index=True),
                          {k: v for p in parts for k, v in p.cmc.items()})

    def last_and_selected(self) -> pd.DataFrame:
        """Last-epoch and selected R1 / mAP / mINP side by side, one row per protocol and direction, with the
        checkpoint each reported row comes from and its score on the selection test when it was chosen."""
        if self.evaluation is None:
            raise ExperimentError("evaluate() the run before comparing its last and selected checkpoints.")
        keys, metrics = ["protocol", "direction"], ["R1", "mAP", "mINP"]
        table = self.last_evaluation.summary[keys + metrics].rename(
            columns={m: f"{m} last (epoch {self.last_epoch})" for m in metrics})
        reported = self.evaluation.summary[keys + metrics + ["checkpoint", "epoch"]].rename(
            columns={m: f"{m} reported" for m in metrics})
        table = table.merge(reported, on=keys)
        selected = self.train_result.selected if self.train_result is not None else {}
        table["chosen by"] = [self._chosen_by(name, selected.get(name)) for name in table["checkpoint"]]
        table.attrs["caption"] = ("last: the weights after the final epoch; reported: the checkpoint this run reports "
                                  f"for each direction ({self.describe_selection()})")
        return table

    def _chosen_by(self, name: str, entry: dict | None) -> str:
        if entry is None:
            return "the loaded weights" if name == "loaded" else "the last epoch"
        keep = next(k for k in self.selection_rule.keeps if k.name == name)
        return f"best {keep.key or keep.metric} on the selection test ({entry['value']:.2f} after epoch {entry['epoch']})"

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
        """Untrained, trained (the last epoch) and chance R1 / mAP side by side, one row per protocol and direction."""
        if self.evaluation is None:
            raise ExperimentError("evaluate() the run before asking for its learning summary.")
        keys = ["protocol", "direction"]
        table = self.last_evaluation.summary[keys + ["R1", "mAP"]].rename(columns={"R1": "R1 trained", "mAP": "mAP trained"})
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

    @property
    def dataset_name(self) -> str:
        """The dataset as tables print it (``SYSU-MM01``, ``RegDB``, ``LLCM``, ``HITSZ-VCM``, ``BUPTCampus``)."""
        return self.benchmark.name

    # --- the sections every paper notebook shares, one call each (a notebook keeps what only its paper shows) ---

    def introduce(self, *notes: str):
        """The notebook's opening: a banner unless the data is real, then the paper, the data, the device, the
        network, how it follows the official code, the checkpoint it reports and the paper's own ``notes`` (one
        Markdown line each); prints where the run writes. Returns the Markdown for the cell to show."""
        from IPython.display import Markdown

        where = self.dataset_name
        parts = []
        if self.data_kind != "real":
            parts.append(f"> **{self.data_kind.capitalize()} data.** These numbers say nothing about the paper: they "
                         "show that every step runs. Set `data_root` to the real dataset to reproduce it.")
        frames = f", S = {self.recipe.seq_len}" if self.recipe.seq_len else ""
        parts.append(f"**{self.paper}** on {where} ({self.data_kind}), {self.params['num_classes']} training "
                     f"identities, device {self.train_config.device}, {self.params['arch']}{frames}.")
        parts.append(f"**As the official code:** {self.fidelity}")
        parts += list(notes)
        parts.append(f"**Reported checkpoint:** {self.describe_selection()}")
        print(f"checkpoints, log and figures: {self.run_dir}")
        return Markdown("\n\n".join(parts))

    def train_or_load(self):
        """The training section's work: the untrained scores when ``score_untrained`` asks, then either the loaded
        checkpoint's provenance or training with its loss curves. Returns the :class:`TrainResult` (None when
        weights were loaded)."""
        from IPython.display import display

        from ..viz import plot_training, table

        if self.params.get("score_untrained"):
            display(table(self.score_untrained().readable(), caption=f"{self.paper} before training"))
        if self.loaded is not None:
            print(f"evaluating {self.loaded.kind} from {self.loaded.path}", *self.loaded.notes, sep="\n - ")
            return None
        result = self.train()
        display(self.figure(plot_training(result.history), "training"))
        print(f"{self.paper}: {len(result.history)} epochs in {self.durations['train_s']} s; "
              f"checkpoint {result.checkpoint}")
        return result

    def show_ranked_lists(self, *where, queries: int = 3, top: int = 10):
        """The ``top`` nearest gallery items of ``queries`` spread-out queries of the first test setting (``where``:
        the direction, for a video run), each figure saved; returns the browser over every query."""
        from IPython.display import display

        from ..viz import plot_ranked_list, ranked_list_browser

        query, gallery, distances, removed = self.ranking_example(*where)
        for q in range(0, len(query), max(1, len(query) // queries))[:queries]:
            figure = plot_ranked_list(query[q], gallery, distances[q], top=top,
                                      removed=None if removed is None else removed[q])
            display(self.figure(figure, f"ranked_query{q}"))
        return ranked_list_browser(query, gallery, distances, top=top, removed=removed)

    def finish(self, others: tuple = ()) -> list[Path]:
        """Write the result record of this run and of ``others`` (the papers the notebook trained beside it)."""
        written = []
        for finished in (self, *others):
            written.append(finished.record())
            print(f"{finished.paper}: result record {written[-1]}, figures {finished.run_dir / 'figures'}")
        return written

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

    def selection_record(self) -> dict:
        """The record's account of which checkpoint its rows come from: the rule (declared, described, and
        whether this run followed it), every kept checkpoint with its epoch, its selection-test scores then
        and its protocol rows, and per direction the checkpoint reported."""
        selected = self.train_result.selected if self.train_result is not None else {}
        kept = {}
        for keep in self.selection_rule.keeps:
            entry = selected.get(keep.name)
            evaluation = self.selected_evaluations.get(keep.name)
            kept[keep.name] = {"metric": keep.metric, "direction": keep.direction, "ties": keep.ties,
                               "epoch": entry["epoch"] if entry else None, "value": entry["value"] if entry else None,
                               "scores": entry["scores"] if entry else None,
                               "rows": evaluation.summary.to_dict(orient="records") if evaluation is not None else None}
        reported = {row["direction"]: row["checkpoint"] for _, row in self.evaluation.summary.iterrows()}
        return {"selection": "loaded" if self.loaded is not None else self.recipe.selection,
                "described": self.describe_selection(), "rule": asdict(self.selection_rule),
                "on_test_set": any(v not in ("last", "loaded") for v in reported.values()), "kept": kept,
                "reported": reported}

    def record(self, results_dir: str | Path | None = None) -> Path:
        """Write this run's result record (default: the run's ``results_dir`` parameter); a relative folder is taken in
        the workbook root."""
        results_dir = self.params.get("results_dir", "results") if results_dir is None else results_dir
        checkpoint = self.train_result.checkpoint if self.train_result else self.params.get("checkpoint") or None
        extra = {"parameters": self.parameter_counts(), "settings": self.settings()}
        if self.train_result is not None and self.train_result.resumed_from is not None:
            extra["resumed_from"] = self.train_result.resumed_from  # epochs the run found done (it was interrupted)
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
                      device=self.train_config.device, durations=self.durations, checkpoint=checkpoint,
                      selection=self.selection_record(), last={"epoch": self.last_epoch, **_parts(self.last_evaluation)},
                      data_sizes=self.data_sizes, trial=self.benchmark.run_trial(self.trial),
                      identity=identity_hash(self.train_config.identity, self.train_config.to_dict()), extra=extra)
        return write_record(make_record(run, self.evaluation), resolve(results_dir))


# A recipe field whose change is another draw of the same setting, not another setting.
VARIES = ("seed",)


def _flat(value: dict, prefix: str = "") -> dict:
    """A nested dict's leaves by dotted name (``selection_rule.eval_every``), tuples as lists (as JSON stores them)."""
    out = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = [_flat(i) if isinstance(i, dict) else i for i in item] \
                if isinstance(item, (tuple, list)) else item
    return out


def _imagenet_file(path: str, arch: str) -> bool:
    from ..models.backbone import is_imagenet_file

    try:
        return is_imagenet_file(path, arch)
    except (OSError, KeyError, ValueError):
        return False


def selection_scores(evaluation: Evaluation) -> dict[str, float]:
    """An evaluation's summary as the trainer's selection scores: ``"<direction> <metric>"`` per row (the first
    row of each direction), and the bare metric names for the first row."""
    scores: dict[str, float] = {}
    for index, row in evaluation.summary.iterrows():
        for metric in KEEP_METRICS:
            scores.setdefault(f"{row['direction']} {metric}", float(row[metric]))
            if index == 0:
                scores[metric] = float(row[metric])
    return scores


def _labelled(evaluation: Evaluation, checkpoint: str, epoch: int | None) -> Evaluation:
    """The evaluation with every row saying which checkpoint (``"last"`` or a keep's name) and epoch it scored."""
    summary = evaluation.summary.copy()
    summary["checkpoint"], summary["epoch"] = checkpoint, epoch
    per_trial = evaluation.per_trial.copy()
    per_trial["checkpoint"], per_trial["epoch"] = checkpoint, epoch
    return Evaluation(summary, per_trial, dict(evaluation.cmc))


def _direction(evaluation: Evaluation, direction: str) -> Evaluation:
    return Evaluation(evaluation.summary[evaluation.summary["direction"] == direction],
                      evaluation.per_trial[evaluation.per_trial["direction"] == direction],
                      {k: v for k, v in evaluation.cmc.items() if k[1] == direction})


def _parts(evaluation: Evaluation | None) -> dict:
    """An evaluation as a record stores it: summary rows, per-trial rows and mean CMC curves."""
    if evaluation is None:
        return {"rows": None, "per_trial": None, "cmc": None}
    return {"rows": evaluation.summary.to_dict(orient="records"),
            "per_trial": evaluation.per_trial.to_dict(orient="records"),
            "cmc": {f"{protocol} | {direction}": curve for (protocol, direction), curve in evaluation.cmc.items()}}


def run_identity(dataset: str, trial: int, data_kind: str, data_sizes: dict, transform: TransformConfig,
                 sampling: dict, model: dict) -> dict:
    """What makes a run this run besides its training configuration: the data (by its split sizes and
    the fingerprint of its training files, not its path, so a moved dataset still resumes but other
    images do not), the transforms, the sampler and the model. It travels in every checkpoint;
    resuming with any field changed is an error naming it."""
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
    """``"auto"`` as the machine allows; anything else checked: a name torch knows, and a CUDA device that exists."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ExperimentError(f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index).")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExperimentError(f"device={device!r} but no CUDA device is visible; use 'cpu' or 'auto'.")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise ExperimentError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0.")
    return device


def check_folder(path: Path | str, name: str) -> Path:
    """``path`` (a run's ``out_dir`` or ``results_dir``, resolved) must be a folder or creatable as one: a file there,
    or above it, is an error before any training (not after it)."""
    resolved = resolve(path)
    blocked = next((p for p in (resolved, *resolved.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ExperimentError(f"{name}={str(path)!r}: {blocked} is a file, not a folder. Pass a folder for {name}.")
    return resolved
