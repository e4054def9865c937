"""Per-paper criteria: the terms the official loops add up, with unit weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vireid_lib.papers.agw import AGWCriterion
from vireid_lib.papers.ivreid import IVReIDCriterion


def hardest(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.cdist(features, features)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    d_ap = torch.where(same & ~eye, d, torch.tensor(-1.0)).max(1).values
    d_an = torch.where(~same, d, torch.tensor(float("inf"))).min(1).values
    return d_ap, d_an


def test_ivreid_criterion_sums_the_official_terms() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    outputs = {k: torch.randn(8 if k in ("logits", "bn") else 4, 16 if k == "bn" else 3, requires_grad=True)
               for k in ("logits", "bn", "visible_logits", "infrared_logits", "infrared_logits_on_visible", "visible_logits_on_infrared")}
    losses = IVReIDCriterion(3, margin=0.2)(outputs, labels)
    identity = (F.cross_entropy(outputs["logits"], labels) + F.cross_entropy(outputs["visible_logits"], labels[:4])
                + F.cross_entropy(outputs["infrared_logits"], labels[4:]))

    def kl(student, teacher):
        return F.kl_div(F.log_softmax(student, 1), F.softmax(teacher.detach(), 1), reduction="batchmean")

    mutual = kl(outputs["visible_logits"], outputs["infrared_logits_on_visible"]) + kl(outputs["infrared_logits"], outputs["visible_logits_on_infrared"])
    d_ap, d_an = hardest(outputs["bn"].detach(), labels)
    triplet = torch.relu(d_ap - d_an + 0.2).mean()
    assert torch.allclose(losses["loss"], identity + mutual + triplet, atol=1e-4)
    losses["loss"].backward()
    assert outputs["infrared_logits_on_visible"].grad is None or not outputs["infrared_logits_on_visible"].grad.any()
    assert outputs["visible_logits"].grad.abs().sum() > 0


def test_agw_criterion_is_cross_entropy_plus_wrt_on_the_pooled_feature() -> None:
    torch.manual_seed(1)
    labels = torch.tensor([0, 0, 1, 1])
    outputs = {"logits": torch.randn(4, 2), "pooled": torch.randn(4, 5), "bn": torch.randn(4, 5)}
    losses = AGWCriterion(2)(outputs, labels)
    assert torch.allclose(losses["id"], F.cross_entropy(outputs["logits"], labels))
    assert torch.allclose(losses["loss"], losses["id"] + losses["wrt"])
    moved = dict(outputs, bn=outputs["bn"] + 10)  # the BN feature plays no part in the loss
    assert torch.allclose(AGWCriterion(2)(moved, labels)["loss"], losses["loss"])
