"""CST as FYJ112233/CST builds it: its used parameters, its tube order, its released checkpoint (mapped strictly, and
giving the features a separate reading of its forward gives), its training views and losses, and its attention."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.transforms import TransformConfig, build_views, wrap_to_uint8
from vireid_lib.engine.checkpoint import CheckpointError, load_weights
from vireid_lib.losses.consistency import PairedDiversityConsistency
from vireid_lib.papers.cst import OFFICIAL_LAYOUTS, CSTCriterion, build_cst, official_size, tube_tokens

SMALL = dict(seq_len=4, height=64, width=32, tube=(2, 2, 1), heads=2, dim_head=8, mlp_dim=24, frame_heads=4,
             arch="resnet18")
LETTERS = "abcdefghijklmn"


@pytest.fixture(scope="module")
def cst():
    torch.manual_seed(0)
    return build_cst(5, pretrained=False, **SMALL)


def test_the_used_network_has_the_released_forwards_parameter_count() -> None:
    """305,451,407: the tensors model_main.embed_net's forward reads at ResNet-50, 288 x 144, S = 14, 500 identities,
    counted from the released shapes (the 7 x 54 position rows read, not the 7 x 13,824 built; the frozen BNNeck
    bias included; CrossTransformer, mlp_head, the SE convs and the unused ResNet parts left out)."""
    assert official_size() == 305_451_407


def test_tubes_follow_the_released_rearrange() -> None:
    """'b c (f pf) (h p1) (w p2) -> b f (h w) (p1 p2 pf c)': element (b, f, h*W' + w, ((p1*P2 + p2)*PF + pf)*C + c)
    is frame f*PF + pf, row h*P1 + p1, column w*P2 + p2, channel c."""
    b, s, c, hh, ww = 2, 4, 3, 4, 2
    maps = torch.arange(b * s * c * hh * ww, dtype=torch.float32).reshape(b, s, c, hh, ww)
    pf, p1, p2 = 2, 2, 1
    tokens = tube_tokens(maps, (pf, p1, p2))
    assert tokens.shape == (b, s // pf, (hh // p1) * (ww // p2), p1 * p2 * pf * c)
    for f in range(s // pf):
        for h in range(hh // p1):
            for w in range(ww // p2):
                for a in range(p1):
                    for d in range(pf):
                        for ch in range(c):
                            index = ((a * p2 + 0) * pf + d) * c + ch
                            assert tokens[1, f, h * (ww // p2) + w, index] == maps[1, f * pf + d, ch, h * p1 + a, w]
    with pytest.raises(ValueError, match="map rows = 4 is not a multiple of the tube's 3"):
        tube_tokens(maps, (2, 3, 1))


# ------------------------------------------------------------------ the released checkpoint

def official_checkpoint(model, extra: dict | None = None) -> dict[str, torch.Tensor]:
    """The workbook model's weights renamed to the released embed_net's names, plus every tensor the released network
    builds and never runs (random values in their released shapes): what the authors' file holds."""
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in own.items():
        if key.startswith("backbone.visible_stem."):
            out["visible_module.visible." + key.split("visible_stem.")[1]] = value
        elif key.startswith("backbone.infrared_stem."):
            out["thermal_module.thermal." + key.split("infrared_stem.")[1]] = value
        elif key.startswith("backbone.layer"):
            out["base_resnet.base." + key[len("backbone."):]] = value
        elif key.startswith("backbone.non_local_blocks."):
            block, part, param = key[len("backbone.non_local_blocks."):].split(".", 2)
            stage, after = (int(x) for x in block[len("layer"):].split("_"))
            blocks = sorted({int(k.split(".")[2].split("_")[1]) for k in own
                             if k.startswith(f"backbone.non_local_blocks.layer{stage}_")})
            official = {"g": "g.0", "theta": "theta", "phi": "phi", "out_conv": "W.0", "out_bn": "W.1"}[part]
            out[f"NL_{stage}.{blocks.index(after)}.{official}.{param}"] = value
        elif key.startswith("neck.bn."):
            out["bottleneck." + key[len("neck.bn."):]] = value
        elif key.startswith("neck.classifier."):
            out["classifier." + key[len("neck.classifier."):]] = value
        elif key.startswith("gates.linears."):
            k, rest = key[len("gates.linears."):].split(".", 1)
            out[f"SENet_learning.{LETTERS[int(k)]}.{rest}"] = value
        elif key.startswith("gates.gates."):
            k, layer, rest = key[len("gates.gates."):].split(".", 2)
            out[f"SENet_learning.se_{int(k) + 1}.fc.{layer}.{rest}"] = value
        elif key == "cst.positions":
            table = torch.randn(value.shape[0], value.shape[1], 3 * value.shape[2], value.shape[3])
            table[:, :, :value.shape[2]] = value  # the released table is larger; its first rows are read
            out["cst_module.pos_embedding"] = table
        else:
            names = {"cst.tube_norm.": "to_patch_embedding.1.", "cst.tube_embed.": "to_patch_embedding.2.",
                     "cst.token_norm.": "to_patch_embedding.3.", "cst.spatial_token": "spatial_cls_token",
                     "cst.temporal_token": "temporal_cls_token", "cst.message_fc.": "message_fc.",
                     "cst.message_norm.": "message_ln.", "cst.message_attention.": "message_attn.",
                     "cst.frame_attention.": "attn.", "cst.frame_norm.": "ln_1.", "cst.mlp.0.": "mlp.c_fc.",
                     "cst.mlp.2.": "mlp.c_proj.", "cst.mlp_norm.": "ln_2."}
            prefix = next((p for p in names if key.startswith(p)), None)
            if prefix is not None:
                out["cst_module." + names[prefix] + key[len(prefix):]] = value
                continue
            which, layer, rest = key[len("cst."):].split(".", 2)  # cst.spatial.0.attn.to_qkv.weight
            parts = {"norm1.": "0.norm.", "attn.to_qkv.": "0.fn.to_qkv.", "attn.to_out.0.": "0.fn.to_out.0.",
                     "norm2.": "1.norm.", "mlp.0.": "1.fn.net.0.", "mlp.3.": "1.fn.net.3."}
            part = next(p for p in parts if rest.startswith(p))
            out[f"cst_module.{which}_transformer.layers.{layer}.{parts[part]}{rest[len(part):]}"] = value
    dim = own["neck.bn.weight"].shape[0]
    unused = {"visible_module.visible.layer1.0.conv1.weight": torch.randn(4, 4, 1, 1),
              "base_resnet.base.conv1.weight": torch.randn(4, 3, 7, 7),
              "cst_module.Crosstransformer.layers.0.0.fn.to_q.weight": torch.randn(8, dim),
              "cst_module.mlp_head.1.weight": torch.randn(5, dim),
              "SENet_learning.se_1.l.weight": torch.randn(dim, dim, 1, 1)}
    return {**out, **unused, **(extra or {})}


def test_the_released_checkpoint_loads_strictly_and_round_trips(cst, tmp_path: Path) -> None:
    official = official_checkpoint(cst)
    torch.save({"net": official, "epoch": 150}, tmp_path / "VCMCST_CTTM_MTFM_DC_2_t2v_rank1_best.t")
    fresh = build_cst(5, pretrained=False, **SMALL)
    loaded = load_weights(fresh, tmp_path / "VCMCST_CTTM_MTFM_DC_2_t2v_rank1_best.t", OFFICIAL_LAYOUTS)
    assert loaded.kind.startswith("CST, FYJ112233/CST") and loaded.epoch == 151
    for key, value in cst.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    text = " ".join(loaded.notes)
    assert "5 never used by the official forward" in text and "reads the first 4 rows" in text
    from vireid_lib.models.official import apply_layout
    reasons = apply_layout(fresh, official, OFFICIAL_LAYOUTS[0], "test").unused
    assert "never calls it" in reasons["cst_module.Crosstransformer.layers.0.0.fn.to_q.weight"]
    assert "discards them" in reasons["cst_module.mlp_head.1.weight"]
    assert "never runs" in reasons["SENet_learning.se_1.l.weight"]
    clips = torch.randn(2, 4, 3, 64, 32)
    cst.eval(), fresh.eval()
    torch.testing.assert_close(fresh(clips)["embedding"], cst(clips)["embedding"], rtol=0, atol=0)


@pytest.mark.parametrize("damage,named", [
    (lambda s: s.pop("cst_module.message_fc.weight"), "cst.message_fc.weight"),
    (lambda s: s.update({"cst_module.extra_block.weight": torch.zeros(1)}), "cst_module.extra_block.weight"),
    (lambda s: s.update({"SENet_learning.o.weight": s.pop("SENet_learning.a.weight")}), "SENet_learning.o.weight"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_tensor(cst, tmp_path: Path, damage, named: str) -> None:
    official = official_checkpoint(cst)
    damage(official)
    torch.save({"net": official}, tmp_path / "bad.t")
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        load_weights(build_cst(5, pretrained=False, **SMALL), tmp_path / "bad.t", OFFICIAL_LAYOUTS)


def _released_transformer(x: torch.Tensor, state: dict, prefix: str, heads: int) -> torch.Tensor:
    """The released Transformer (PreNorm Attention + PreNorm FeedForward, dropout off), read from CST.py: q, k, v
    are chunks of one bias-free projection, split '(h d)'; softmax(q k^T * d^-0.5) v; GELU feed-forward."""
    w = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    normed = F.layer_norm(x, x.shape[-1:], w["0.norm.weight"], w["0.norm.bias"])
    q, k, v = (normed @ w["0.fn.to_qkv.weight"].T).chunk(3, dim=-1)
    b, n, inner = q.shape
    q, k, v = (t.reshape(b, n, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
    attended = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(inner // heads), dim=-1) @ v
    x = x + attended.transpose(1, 2).reshape(b, n, inner) @ w["0.fn.to_out.0.weight"].T + w["0.fn.to_out.0.bias"]
    normed = F.layer_norm(x, x.shape[-1:], w["1.norm.weight"], w["1.norm.bias"])
    hidden = F.gelu(normed @ w["1.fn.net.0.weight"].T + w["1.fn.net.0.bias"])
    return x + hidden @ w["1.fn.net.3.weight"].T + w["1.fn.net.3.bias"]


def _released_mha(x: torch.Tensor, state: dict, prefix: str, heads: int) -> torch.Tensor:
    """nn.MultiheadAttention(q = k = v = x), sequence-first as CST.py calls it: x is [L, N, E]."""
    return F.multi_head_attention_forward(x, x, x, x.shape[-1], heads, state[prefix + "in_proj_weight"],
                                          state[prefix + "in_proj_bias"], None, None, False, 0.0,
                                          state[prefix + "out_proj.weight"], state[prefix + "out_proj.bias"],
                                          training=False, need_weights=False)[0]


def released_clip_feature(state: dict, maps: torch.Tensor, frames: torch.Tensor, tube, heads: int,
                          frame_heads: int) -> torch.Tensor:
    """CST_module.forward and SENet_learning.forward re-read from the released code, on its own tensor names (no
    workbook module): ``maps`` [B, C, S, h, w] as embed_net hands them over, ``frames`` [S, B, C] GeM vectors;
    returns the post-BN test feature before the L2 normalisation."""
    b, c, s, hh, ww = maps.shape
    pf, p1, p2 = tube
    x = maps.reshape(b, c, s // pf, pf, hh // p1, p1, ww // p2, p2).permute(0, 2, 4, 6, 5, 7, 3, 1)
    x = x.reshape(b, s // pf, (hh // p1) * (ww // p2), p1 * p2 * pf * c)
    ln = lambda t, name: F.layer_norm(t, t.shape[-1:], state[name + ".weight"], state[name + ".bias"])  # noqa: E731
    x = ln(x, "cst_module.to_patch_embedding.1") @ state["cst_module.to_patch_embedding.2.weight"].T
    x = ln(x + state["cst_module.to_patch_embedding.2.bias"], "cst_module.to_patch_embedding.3")
    f, n = x.shape[1], x.shape[2]
    x = x + state["cst_module.pos_embedding"][:, :, :n]
    x = torch.cat([state["cst_module.spatial_cls_token"].reshape(1, 1, 1, c).expand(b, f, 1, c), x], dim=2)
    x = _released_transformer(x.reshape(b * f, n + 1, c), state, "cst_module.spatial_transformer.layers.0.", heads)
    seq = x.permute(1, 0, 2)  # [n + 1, B f, C]
    cross = seq.reshape(n + 1, b, f, c)
    msg = (cross[0] @ state["cst_module.message_fc.weight"].T + state["cst_module.message_fc.bias"])  # [B, f, C]
    msg = msg.reshape(b, f, c).permute(1, 0, 2)  # [f, B, C]
    normed = ln(msg, "cst_module.message_ln")
    msg = msg + _released_mha(normed, state, "cst_module.message_attn.", c)
    msg = msg.permute(1, 0, 2).reshape(1, b, f, c)
    together = torch.cat([cross, msg], dim=0).reshape(n + 2, b * f, c)
    together = together + _released_mha(ln(together, "cst_module.ln_1"), state, "cst_module.attn.", frame_heads)
    patch = together[: n + 1]
    hidden = ln(patch, "cst_module.ln_2") @ state["cst_module.mlp.c_fc.weight"].T + state["cst_module.mlp.c_fc.bias"]
    hidden = hidden * torch.sigmoid(1.702 * hidden)
    patch = patch + hidden @ state["cst_module.mlp.c_proj.weight"].T + state["cst_module.mlp.c_proj.bias"]
    tokens = patch.permute(1, 0, 2).reshape(b, f, n + 1, c)[:, :, 0]
    clip = torch.cat([state["cst_module.temporal_cls_token"].expand(b, 1, c), tokens], dim=1)
    fusion = _released_transformer(clip, state, "cst_module.temporal_transformer.layers.0.", heads)[:, 0]
    gated = []
    for k in range(s):
        t = (fusion @ state[f"SENet_learning.{LETTERS[k]}.weight"].T + state[f"SENet_learning.{LETTERS[k]}.bias"]
             + frames[k]) / 2
        gate = torch.sigmoid(torch.relu(t @ state[f"SENet_learning.se_{k + 1}.fc.0.weight"].T)
                             @ state[f"SENet_learning.se_{k + 1}.fc.2.weight"].T)
        gated.append(frames[k] * gate + frames[k])
    pooled = torch.stack(gated).mean(dim=0)
    return F.batch_norm(pooled, state["bottleneck.running_mean"], state["bottleneck.running_var"],
                        state["bottleneck.weight"], state["bottleneck.bias"], training=False, eps=1e-5)


def test_a_released_checkpoint_gives_the_released_forwards_features() -> None:
    """Random weights in the released layout: the workbook model, loaded through the layout, gives the test feature
    that a separate reading of CST_module / SENet_learning / the BNNeck computes from the same file's tensors."""
    torch.manual_seed(1)
    model = build_cst(5, pretrained=False, **SMALL).eval()
    with torch.no_grad():
        for p in [*model.cst.parameters(), *model.gates.parameters(), *model.neck.parameters()]:
            p.add_(0.05 * torch.randn_like(p))  # away from the initial values (zero biases...), so every tensor matters
        model.neck.bn.running_mean.normal_(0, 0.1), model.neck.bn.running_var.uniform_(0.5, 2.0)
    state = official_checkpoint(model)
    loaded = build_cst(5, pretrained=False, **SMALL).eval()
    from vireid_lib.models.official import apply_layout
    loaded.load_state_dict(apply_layout(loaded, state, OFFICIAL_LAYOUTS[0], "test").state, strict=True)
    clips = torch.randn(3, 4, 3, 64, 32)
    with torch.no_grad():
        maps = loaded.backbone(clips.flatten(0, 1), None)  # the shared trunk is AGW's, tested on its own
        frames = loaded.pool(maps).reshape(3, 4, -1).permute(1, 0, 2)
        expected = released_clip_feature(state, maps.reshape(3, 4, *maps.shape[1:]).permute(0, 2, 1, 3, 4), frames,
                                         SMALL["tube"], SMALL["heads"], SMALL["frame_heads"])
        torch.testing.assert_close(loaded(clips)["embedding"], expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ training views and losses

def test_the_second_visible_view_starts_from_the_first_views_wrapped_bytes() -> None:
    """transform_color1 on a normalised tensor: ToPILImage casts mul(255) to bytes, which wrap around."""
    assert wrap_to_uint8(torch.tensor([[[-1.0, -0.5, 1.5, 0.2]]]).expand(3, 1, 4)).tolist()[0][0] == [1, 129, 126, 51]
    cfg = TransformConfig(height=16, width=8, pad=1)
    views = build_views(cfg, VISIBLE, ("exchange_erasing", "caj_of_previous"))
    image = torch.randint(0, 256, (3, 16, 8), dtype=torch.uint8)
    torch.manual_seed(0)
    first, second = views(image)
    assert first.shape == second.shape == (3, 16, 8)
    assert all(torch.equal(first[0], first[c]) or not torch.equal(first[0], first[1]) for c in range(3))
    with pytest.raises(Exception, match="cannot come first"):
        build_views(cfg, VISIBLE, ("caj_of_previous",))
    infrared = build_views(cfg, INFRARED, ("caj",))
    assert infrared(image).shape == (3, 16, 8)


def test_the_first_visible_view_replicates_a_channel_before_erasing() -> None:
    """transform_color: ChannelExchange then ChannelRandomErasing, so an erased box keeps every channel's own fill
    while the rest of the image has one channel's values in all three."""
    cfg = TransformConfig(height=32, width=16, pad=0, flip=False, caj_erasing=1.0)
    view = build_views(cfg, VISIBLE, ("exchange_erasing",))
    torch.manual_seed(3)
    out = view(torch.randint(0, 256, (3, 32, 16), dtype=torch.uint8))
    same = (out[0] == out[1]) & (out[1] == out[2])
    assert same.float().mean() > 0.3 and not bool(same.all())  # replicated outside the box, per-channel fill inside


def test_the_dc_loss_follows_the_released_terms() -> None:
    x = torch.randn(6, 4)
    out = PairedDiversityConsistency()(x, x.clone())
    assert out["dc_invariance"] == 0.0
    centred = x - x.mean(0)
    std = torch.sqrt(centred.var(0) + 1e-4)
    assert out["dc_variance"] == pytest.approx(float(torch.relu(1 - std).mean()), rel=1e-5)
    cov = centred.T @ centred
    off = float((cov ** 2).sum() - (torch.diagonal(cov) ** 2).sum())
    assert out["dc_covariance"] == pytest.approx(2 * off / 9 / 8192 ** 3, rel=1e-4)  # / 3^2 (rows squared), / 8192^3
    fixed = PairedDiversityConsistency(official=False)(x, x.clone())
    assert fixed["dc_covariance"] == pytest.approx(2 * off / 25 / 4, rel=1e-4)  # / (N - 1)^2, / D
    assert out["dc"] == pytest.approx(25 * float(out["dc_variance"]) + float(out["dc_covariance"]), rel=1e-5)
    with pytest.raises(ValueError, match="as many visible as infrared"):
        PairedDiversityConsistency()(x, x[:4])


def test_training_outputs_losses_gradients_and_the_batch_order(cst) -> None:
    cst.train()
    v, i, v2 = (torch.randn(2, 4, 3, 64, 32) for _ in range(3))
    out = cst(v, i, v2)
    assert out["modality"].tolist() == [0, 0, 0, 0, 1, 1]  # [V, V_second, I]
    losses = CSTCriterion(5, center_weight=2.0)(out, torch.tensor([0, 1, 0, 1, 0, 1]))
    assert {"id", "triplet", "dc", "dc_invariance", "dc_variance", "dc_covariance", "center"} <= set(losses)
    losses["loss"].backward()
    assert cst.cst.message_fc.weight.grad is not None and cst.gates.linears[0].weight.grad is not None
    with pytest.raises(ValueError, match="built for clips of 4 frames, got 6"):
        cst(torch.randn(1, 6, 3, 64, 32), None)


def test_attention_maps_and_gates_come_back_without_hooks(cst) -> None:
    attention = cst.attention(torch.randn(2, 4, 3, 64, 32), "infrared")
    (spatial,) = attention.spatial
    assert spatial.shape == (2, 2, 2, 5, 5) and torch.allclose(spatial.sum(-1), torch.ones(2, 2, 2, 5))
    assert attention.message.shape == (2, 512, 2, 2)  # one head per channel, across the 2 frame pairs
    assert torch.allclose(attention.message_matrix().sum(-1), torch.ones(2, 2))
    assert attention.tube_maps().shape == (2, 4, 4, 2) and attention.frame.shape[-1] == 6  # 4 tubes + class + message
    strength = attention.gate_strength()
    assert strength.shape == (2, 4) and bool(((strength > 0) & (strength < 1)).all())
    with pytest.raises(ValueError, match="modality"):
        cst.attention(torch.randn(1, 4, 3, 64, 32), "thermal")
