"""The training configuration every paper's recipe fills in, its learning-rate schedule, and the
checkpoints it keeps by a score on the test set (:class:`Keep`), as the official scripts do."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..selection import Keep

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("warmup_step", "constant")
AMP_MODES = ("off", "bf16", "fp16")
# Where a training batch is augmented: image by image in the loader processes, or as whole uint8 batches
# on the run's device (vireid_lib.data.batched); the two draw other crops from the same distribution.
AUGMENT_MODES = ("loader", "device")


class ConfigError(ValueError):
    """A training parameter is out of range; the message names it and the valid values."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop needs besides the model, criterion and data.

    Defaults are AGW's recipe (Cross-Modal-Re-ID-baseline): SGD with Nesterov momentum 0.9,
    weight decay 5e-4, warm-up ``lr * (e + 1) / 10`` for epochs 0-9, then x0.1 at epoch 20
    and x0.01 at 50, 81 epochs. ``lr`` is the base rate; each parameter group's own rate is
    set by the model's ``param_groups(lr)`` and follows the same schedule.
    """

    epochs: int = 81
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "warmup_step"
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (20, 50)
    gamma: float = 0.1
    amp: str = "off"
    channels_last: bool = False
    augment: str = "loader"
    compile: bool = False  # torch.compile the network for the training steps (evaluation runs the plain module)
    eval_every: int = 0
    eval_first: int = 0  # the first (1-based) epoch evaluated every eval_every epochs; 0: eval_every's multiples
    # The checkpoints kept by their scheduled test scores (none: the last epoch is the only result).
    keeps: tuple[Keep, ...] = ()
    seed: int = 0
    device: str = "cpu"
    out_dir: str = "runs/train"
    resume: bool = True
    progress: bool = True
    extra: dict = field(default_factory=dict)
    # Everything outside this config that makes the run what it is (data, transforms, sampler,
    # model): checked on resume like the fields above, so a checkpoint never continues another run.
    identity: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} is invalid: {rule}.")

        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise bad("epochs", "it must be a positive integer")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"use one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"use one of {SCHEDULES}")
        if self.amp not in AMP_MODES:
            raise bad("amp", f"use one of {AMP_MODES} ('bf16' or 'fp16' take effect on CUDA only)")
        if self.augment not in AUGMENT_MODES:
            raise bad("augment", f"use one of {AUGMENT_MODES} ('device': whole uint8 batches augmented on the run's device)")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", "it must be a positive finite number")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1 or self.gamma <= 0:
            raise ConfigError("TrainConfig: weight_decay must be >= 0, momentum in [0, 1) and gamma > 0.")
        if self.warmup_epochs < 0 or list(self.milestones) != sorted(self.milestones):
            raise bad("milestones", "warm-up epochs must be >= 0 and milestones ascending")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise bad("eval_every", "use 0 (evaluate after the last epoch only) or a positive number of epochs")
        if not isinstance(self.eval_first, int) or self.eval_first < 0:
            raise bad("eval_first", "use 0 (every eval_every-th epoch) or the first 1-based epoch to evaluate")
        if not all(isinstance(k, Keep) for k in self.keeps):
            raise bad("keeps", "it must hold vireid_lib.engine.Keep entries")
        names = [k.name for k in self.keeps]
        if len(set(names)) != len(names):
            raise bad("keeps", "every kept checkpoint needs its own name")

    def scheduled_evaluation(self, epoch: int) -> bool:
        """Whether the test set is scored after ``epoch`` (0-based) for model selection.

        Every ``eval_every``-th epoch, counted from the 1-based epoch ``eval_first`` (e.g. MCE's
        official ``epoch > 10 and epoch % 2 == 0`` on 0-based epochs is ``eval_every=2, eval_first=13``).
        """
        if not self.eval_every:
            return False
        done = epoch + 1
        if self.eval_first:
            return done >= self.eval_first and (done - self.eval_first) % self.eval_every == 0
        return done % self.eval_every == 0

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of every group's base rate in ``epoch`` (0-based)."""
        if self.schedule == "constant":
            return 1.0
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        return self.gamma ** sum(epoch >= m for m in self.milestones)

    def to_dict(self) -> dict:
        return asdict(self)
