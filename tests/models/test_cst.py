"""CST and the video baseline: tubes, message tokens, attention maps, the DC loss, shapes."""

from __future__ import annotations

import pytest
import torch

from vireid_lib.models import CSTCriterion, VideoBaselineCriterion, build_cst, build_video_baseline
from vireid_lib.models.attention import SelfAttention, attention_rollout
from vireid_lib.models.cst import MTFM, tube_tokens

SMALL = dict(seq_len=4, height=64, width=32, pretrained=False, arch="resnet18", dim=32, tube=(2, 2, 1), heads=4)


@pytest.fixture(scope="module")
def cst():
    torch.manual_seed(0)
    return build_cst(5, **SMALL).eval()


def clips(n: int = 2, s: int = 4) -> torch.Tensor:
    return torch.randn(n, s, 3, 64, 32, generator=torch.Generator().manual_seed(n * 10 + s))


def test_tube_tokens_cover_every_cell_of_the_clip_exactly_once() -> None:
    b, s, d, h, w = 2, 6, 3, 6, 4
    tube = (2, 3, 2)
    # each cell holds its own flat index in every channel, so tokens can be traced back
    ids = torch.arange(b * s * h * w, dtype=torch.float64).reshape(b, s, 1, h, w).expand(b, s, d, h, w)
    tokens = tube_tokens(ids.contiguous(), tube)
    assert tokens.shape == (b, (6 // 2) * (6 // 3) * (4 // 2), 2 * 3 * 2 * d)
    seen = tokens.reshape(b, tokens.shape[1], -1, d)[..., 0]  # channel 0 of every cell of every tube
    for clip in range(b):
        cells = seen[clip].flatten().long()
        expected = torch.arange(clip * s * h * w, (clip + 1) * s * h * w)
        assert torch.equal(cells.sort().values, expected)  # all cells, none twice
    # one tube is one block: first tube = frames 0-1, rows 0-2, cols 0-1
    first = seen[0, 0].long().tolist()
    assert sorted(first) == sorted(f * h * w + r * w + c for f in (0, 1) for r in range(3) for c in range(2))


def test_tube_size_that_does_not_divide_the_clip_is_refused() -> None:
    with pytest.raises(ValueError, match="seq_len"):
        tube_tokens(torch.zeros(1, 5, 2, 4, 2), (2, 2, 1))
    with pytest.raises(ValueError, match=r"tube=\(2, 3, 1\) must divide"):
        build_cst(5, **{**SMALL, "tube": (2, 3, 1)})


def test_attention_rows_sum_to_one_and_masks_are_respected() -> None:
    attention = SelfAttention(16, heads=4)
    x = torch.randn(3, 7, 16)
    _, weights = attention(x)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 7))
    mask = torch.eye(7, dtype=torch.bool)
    _, masked = attention(x, mask)
    torch.testing.assert_close(masked, torch.eye(7).expand(3, 4, 7, 7))
    with pytest.raises(ValueError, match="allows no token"):
        attention(x, torch.zeros(7, 7, dtype=torch.bool))


def test_model_attention_maps_are_returned_without_hooks_and_are_distributions(cst) -> None:
    maps = cst.attention(clips(), "infrared")
    assert maps.grid == (2, 2, 2) and maps.map_size == (4, 2)
    assert len(maps.tube) == len(maps.message) == len(maps.frame) == 2
    for layer in maps.tube + maps.message + maps.frame:
        torch.testing.assert_close(layer.sum(-1), torch.ones(layer.shape[:-1]))
    assert maps.tube[0].shape == (2, 4, 1 + 8, 1 + 8)
    assert maps.message[0].shape == (2, 4, 4, 4)
    assert maps.frame[0].shape == (2, 4, 4, 1 + 8, 1 + 8)
    rollout = maps.tube_rollout()
    assert rollout.shape == (2, 4, 4, 2) and (rollout >= 0).all()
    # each tube's share is spread over its cells: frames 0 and 1 share tube time-slot 0
    torch.testing.assert_close(rollout[:, 0], rollout[:, 1])
    torch.testing.assert_close(maps.frame_reliance().sum(-1), torch.ones(2))
    assert maps.frame_maps().shape == (2, 4, 4, 2)


def test_message_tokens_exchange_information_across_frames_and_not_when_masked() -> None:
    torch.manual_seed(0)
    mtfm = MTFM(dim=16, seq_len=4, map_size=(2, 2), depth=2, heads=4).eval()
    maps = torch.randn(1, 4, 16, 2, 2)
    changed = maps.clone()
    changed[:, 3] = torch.randn(16, 2, 2)  # only the last frame changes (not by a constant: LayerNorm hides those)
    with torch.no_grad():
        open_before, open_after = mtfm.encode(maps, True)[0], mtfm.encode(changed, True)[0]
        shut_before, shut_after = mtfm.encode(maps, False)[0], mtfm.encode(changed, False)[0]
    # with exchange, frame 0's message hears about frame 3; masked, it cannot
    assert (open_before[:, 0] - open_after[:, 0]).abs().max() > 1e-3
    torch.testing.assert_close(shut_before[:, :3], shut_after[:, :3])
    assert (shut_before[:, 3] - shut_after[:, 3]).abs().max() > 1e-3
    with torch.no_grad():  # the module's output is the mean of the normalised per-frame messages
        torch.testing.assert_close(mtfm(maps, exchange=False)[0], mtfm.norm(shut_before).mean(1))


def test_with_one_layer_a_later_frame_reaches_frame_zero_through_its_message_token() -> None:
    torch.manual_seed(0)
    mtfm = MTFM(dim=16, seq_len=6, map_size=(2, 2), depth=1, heads=4).eval()
    maps = torch.randn(1, 6, 16, 2, 2)
    changed = maps.clone()
    changed[:, 5] = torch.randn(16, 2, 2)
    with torch.no_grad():
        before, after = mtfm.encode(maps)[:2], mtfm.encode(changed)[:2]
        masked_before, masked_after = mtfm.encode(maps, exchange=False)[:2], mtfm.encode(changed, exchange=False)[:2]
    for b, a in zip(before, after):  # frame 0's message and its spatial tokens both change
        assert (b[:, 0] - a[:, 0]).abs().max() > 1e-3
    for b, a in zip(masked_before, masked_after):  # no exchange: frame 0 cannot know frame 5
        torch.testing.assert_close(b[:, 0], a[:, 0])


def test_two_clips_give_different_first_layer_exchange_outputs() -> None:
    torch.manual_seed(0)
    mtfm = MTFM(dim=16, seq_len=6, map_size=(2, 2), depth=2, heads=4).eval()
    seen = []
    handle = mtfm.layers[0].exchange.register_forward_hook(lambda module, args, out: seen.append(out[0]))
    with torch.no_grad():
        mtfm(torch.randn(2, 6, 16, 2, 2))
    handle.remove()
    first, second = seen[0]
    assert (first - second).abs().max() > 1e-2  # message tokens start from their frames, not from a constant


def test_cst_training_outputs_losses_and_gradients(cst) -> None:
    cst.train()
    try:
        labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
        outputs = cst(clips(4), clips(4, 4) + 1)
        assert outputs["pooled"].shape == (8, 512 + 32 + 32)
        assert outputs["modality"].tolist() == [0] * 4 + [1] * 4
        for branch in ("global", "tube", "message"):
            assert outputs[f"logits_{branch}"].shape == (8, 5)
        losses = CSTCriterion(5)(outputs, labels)
        assert torch.isfinite(losses["loss"])
        expected = sum(losses[f"id_{b}"] + losses[f"triplet_{b}"] for b in ("global", "tube", "message")) + losses["dc"]
        torch.testing.assert_close(losses["loss"], expected)
        losses["loss"].backward()
        assert cst.cttm.embed.weight.grad is not None and cst.mtfm.message.weight.grad is not None
    finally:
        cst.zero_grad(set_to_none=True)
        cst.eval()
    assert cst(clips(), None)["embedding"].shape == (2, 576)


def test_clip_shapes_are_checked(cst) -> None:
    with pytest.raises(ValueError, match=r"clips \[B, S, 3, H, W\]"):
        cst(torch.zeros(2, 3, 64, 32), None)
    with pytest.raises(ValueError, match="built for 4 frames with 4x2 maps but got 6 frames"):
        cst(clips(2, 6), None)


def test_video_baseline_aggregates_frames_and_trains_with_ce_and_triplet() -> None:
    torch.manual_seed(0)
    model = build_video_baseline(3, pretrained=False, arch="resnet18")
    labels = torch.tensor([0, 1, 0, 1])
    outputs = model(clips(2), clips(2))
    assert outputs["pooled"].shape == (4, 512) and outputs["logits"].shape == (4, 3)
    losses = VideoBaselineCriterion(3)(outputs, labels)
    torch.testing.assert_close(losses["loss"], losses["id"] + losses["triplet"])
    model.eval()
    # without the LSTM the clip feature is exactly the mean of the frame features
    plain = build_video_baseline(3, pretrained=False, arch="resnet18", lstm=False).eval()
    x = clips(1)
    with torch.no_grad():
        frames = plain.pool(plain.backbone(x[0], None)).flatten(1)
        torch.testing.assert_close(plain.pooled_feature(x, None)[0], frames.mean(0))
        assert model(None, x)["embedding"].shape == (1, 512)
    groups = model.param_groups(0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.1])
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_rollout_of_identity_layers_is_identity() -> None:
    eye = torch.eye(5).expand(2, 3, 5, 5)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))
    uniform = torch.full((1, 1, 4, 4), 0.25)
    # with the residual: (0.25 + I) / 2 per layer
    torch.testing.assert_close(attention_rollout([uniform], residual=True)[0], (torch.full((4, 4), 0.25) + torch.eye(4)) / 2)
