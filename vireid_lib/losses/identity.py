"""Identity (classification) losses: label-smoothed cross-entropy and mutual KL between heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    # Under fp16/bf16 autocast the logits arrive in half precision; softmax statistics are
    # computed in float32 (float64 inputs stay float64 so hand-checked tests are exact).
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_logits(name: str, logits: torch.Tensor) -> None:
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch x classes matrix, got shape {tuple(logits.shape)}.")


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against smoothed one-hot targets.

    The targets are ``(1 - epsilon) * onehot + epsilon / num_classes`` (Szegedy et al., CVPR
    2016, as used by reid-strong-baseline and the IV-ReID baseline's ``CrossEntropyLabelSmooth``),
    and the loss is the batch mean of ``-sum_k target_k * log p_k``. ``epsilon=0`` is plain
    ``F.cross_entropy``; it is the default because none of the reproduced papers smooths
    (AGW, CAJ, MMN and the IV-ReID baseline all train with ``nn.CrossEntropyLoss``).
    """

    def __init__(self, num_classes: int, epsilon: float = 0.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon is a probability mass and must lie in [0, 1], got {epsilon}.")
        self.num_classes = int(num_classes)
        self.epsilon = float(epsilon)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean smoothed cross-entropy of ``logits`` [B, num_classes] for integer ``targets`` [B]."""
        _check_logits("logits", logits)
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {logits.shape[1]} classes but the loss was built for num_classes={self.num_classes}; "
                "build it with the classifier's output size (the number of training identities)."
            )
        if targets.shape != logits.shape[:1]:
            raise ValueError(f"targets must have shape ({logits.shape[0]},), got {tuple(targets.shape)}.")
        # An out-of-range label is a CUDA device-side assert otherwise, which kills the process
        # without naming the culprit; one check per step is cheap next to a ResNet forward.
        if ((targets < 0) | (targets >= self.num_classes)).any():
            raise ValueError(
                f"targets must lie in [0, {self.num_classes}), got values from {int(targets.min())} to "
                f"{int(targets.max())}; relabel the training identities to 0..{self.num_classes - 1}."
            )
        log_probs = F.log_softmax(_at_least_float32(logits), dim=1)
        # -sum_k q_k log p_k with q = (1-eps) onehot + eps/K splits into (1-eps) NLL + eps * mean_k(-log p_k);
        # this avoids materialising the dense target matrix.
        nll = -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
        uniform = -log_probs.mean(dim=1)
        return ((1.0 - self.epsilon) * nll + self.epsilon * uniform).mean()


class MutualKL(nn.Module):
    """KL term pulling one modality-specific identity head toward the other's detached prediction.

    The IV-ReID strong baseline (``linyq17/IV-REID``, ``train_sysumm.py``) gives the visible
    and the infrared head, on the same samples, a term
    ``KLDivLoss(reduction="batchmean")(log_softmax(student), softmax(teacher.detach()))``:
    each head is a student of the other, and no gradient reaches the teacher's logits (the
    teacher gets its own pull when the roles swap). ``forward(student, teacher)`` returns
    ``KL(softmax(teacher / T) || softmax(student / T))`` summed over classes and averaged over
    the batch.

    With ``temperature != 1`` the result is multiplied by ``T**2`` (Hinton et al., 2015): the
    gradient of the softened KL w.r.t. the logits scales like ``1 / T**2``, so the factor keeps
    the term's weight independent of ``T``. With the official ``T = 1`` the factor is 1 and the
    value equals the official one exactly.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.temperature = float(temperature)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        _check_logits("student_logits", student_logits)
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                f"student_logits {tuple(student_logits.shape)} and teacher_logits {tuple(teacher_logits.shape)} "
                "must have the same shape: both heads must score the same samples over the same identities."
            )
        t = self.temperature
        log_student = F.log_softmax(_at_least_float32(student_logits) / t, dim=1)
        # Detach: the teacher is a fixed target for this term (official behaviour).
        log_teacher = F.log_softmax(_at_least_float32(teacher_logits.detach()) / t, dim=1)
        # log_target avoids log(0) when a teacher probability underflows; same value as the official form.
        kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
        return kl * (t * t)
