"""The batched, on-device training augmentation against the per-sample pipeline.

Two halves: given the same draws the batched steps give the per-sample steps' output bit for
bit (built here from the per-sample building blocks and plain slicing), and the two paths,
each drawing its own randomness, produce outputs from the same distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from vireid_lib.data.batched import BatchAugment, BatchViews, Draws, ViewSpec, batched_views, view_spec
from vireid_lib.data.errors import DatasetError
from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.transforms import Normalize, TransformConfig, build_view

H, W, PAD = 12, 8, 2
CFG = TransformConfig(height=H, width=W, pad=PAD, random_erasing=0.5)


def _images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, H, W, 3), dtype=np.uint8))


def _per_sample(image: torch.Tensor, spec: ViewSpec, draws: Draws, b: int) -> torch.Tensor:
    """One image through the per-sample steps with draw ``b`` fixed: pad, crop, flip, Normalize, erase, channel."""
    chw = image.permute(2, 0, 1)
    padded = torch.full((3, H + 2 * spec.pad, W + 2 * spec.pad), spec.pad_fill, dtype=torch.uint8)
    padded[:, spec.pad:spec.pad + H, spec.pad:spec.pad + W] = chw
    top, left = int(draws.top[b]), int(draws.left[b])
    crop = padded[:, top:top + H, left:left + W]
    if draws.flip[b]:
        crop = crop.flip(-1)
    x = Normalize(spec.mean, spec.std)(crop)
    for box in (draws.erase, draws.channel_erase):
        if box is not None and box[0][b]:
            t, l, h, w = (int(v[b]) for v in box[1:])
            for c in range(3):
                x[c, t:t + h, l:l + w] = spec.erasing_fill[c]
    if draws.channel is not None:
        idx = int(draws.channel[b])
        if idx < 3:
            x = x[idx:idx + 1].expand(3, -1, -1).clone()
        elif draws.gray[b]:
            x = (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1).clone()
    return x


SPECS = [(name, modality) for name in ("train", "erasing", "caj", "erasing_grey_pad") for modality in (VISIBLE, INFRARED)]


@pytest.mark.parametrize("name,modality", SPECS)
def test_given_the_same_draws_the_batch_equals_the_per_sample_steps_bit_for_bit(name: str, modality: int) -> None:
    spec = view_spec(CFG, modality, name)
    augment = BatchAugment(spec)
    images = _images(64)
    torch.manual_seed(1)
    draws = augment.sample(64, H, W)
    out = augment.apply(images, draws)
    assert out.shape == (64, 3, H, W) and out.dtype == torch.float32
    for b in range(64):
        assert torch.equal(out[b], _per_sample(images[b], spec, draws, b)), (name, modality, b)
    # every kind of draw actually occurred in these 64 samples, so the comparison covered it
    assert draws.flip.any() and not draws.flip.all()
    assert draws.erase is not None and draws.erase[0].any()
    if spec.channel != "none":
        assert len(set(draws.channel.tolist())) == (3 if spec.channel == "exchange" else 4)


def test_view_specs_mirror_the_named_views() -> None:
    assert view_spec(CFG, VISIBLE, "train") == ViewSpec(pad=PAD, erasing=0.5)
    assert view_spec(CFG, INFRARED, "caj").channel == "gray" and view_spec(CFG, VISIBLE, "caj").channel == "exchange"
    assert view_spec(CFG, VISIBLE, "erasing_grey_pad").pad_fill == 127
    assert view_spec(CFG, VISIBLE, "erasing").channel_erasing == 0.5 and view_spec(CFG, VISIBLE, "erasing").channel == "none"
    with pytest.raises(DatasetError, match="not known"):
        view_spec(CFG, VISIBLE, "mixup")


def _features(x: torch.Tensor, fill: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Per-sample statistics whose distributions the two paths must share (rounded: a reduction over another
    memory layout may sum in another order, and KS would take last-bit differences for different values)."""
    x = x.contiguous()
    filled = torch.stack([(x[:, c] == fill[c]) for c in range(3)], 1).all(1)
    same = (x[:, 0] == x[:, 1]) & (x[:, 1] == x[:, 2])
    stats_ = {"mean_r": x[:, 0].mean((1, 2)), "mean_b": x[:, 2].mean((1, 2)), "erased": filled.float().mean((1, 2)),
              "grey": same.float().mean((1, 2)), "left_col": x[:, 1, :, 0].mean(1), "top_row": x[:, 0, 0, :].mean(1)}
    return {k: np.round(v.double().numpy(), 4) for k, v in stats_.items()}


@pytest.mark.parametrize("name,modality", [("train", VISIBLE), ("caj", VISIBLE), ("caj", INFRARED),
                                           ("erasing_grey_pad", INFRARED)])
def test_the_batched_and_per_sample_paths_draw_from_the_same_distribution(name: str, modality: int) -> None:
    count = 3000
    image = _images(1, seed=3)[0]
    torch.manual_seed(5)
    per_sample_view = build_view(CFG, modality, name)
    cpu = torch.stack([per_sample_view(image.numpy().copy()) for _ in range(count)])
    torch.manual_seed(6)
    batched = BatchAugment(view_spec(CFG, modality, name))(image.expand(count, -1, -1, -1).contiguous())
    fill = CFG.erasing_fill
    for key, a in _features(cpu, fill).items():
        b = _features(batched, fill)[key]
        result = stats.ks_2samp(a, b)
        assert result.pvalue > 1e-3, (name, modality, key, result)
    # pixel by pixel: the mean image agrees within sampling error (z-scores over all pixels)
    diff = cpu.mean(0) - batched.mean(0)
    spread = torch.sqrt((cpu.var(0) + batched.var(0)) / count).clamp_min(1e-6)
    assert (diff.abs() / spread).max() < 5.0


def test_a_shifted_pipeline_is_caught_by_the_distribution_check() -> None:
    """The check above can fail: flipping always instead of half the time is detected."""
    count = 3000
    image = _images(1, seed=3)[0]
    torch.manual_seed(5)
    cpu = torch.stack([build_view(CFG, VISIBLE, "train")(image.numpy().copy()) for _ in range(count)])
    augment = BatchAugment(view_spec(CFG, VISIBLE, "train"))
    batch = image.expand(count, -1, -1, -1).contiguous()
    draws = augment.sample(count, H, W)
    draws.flip[:] = True
    wrong = augment.apply(batch, draws)
    pvalues = [stats.ks_2samp(a, _features(wrong, CFG.erasing_fill)[k]).pvalue
               for k, a in _features(cpu, CFG.erasing_fill).items()]
    assert min(pvalues) < 1e-3


def test_batch_views_return_what_the_loader_did_and_draw_each_view_apart() -> None:
    views = batched_views(CFG, {"visible": ("train", "caj"), "infrared": ("train",)})
    images = _images(4)
    pids = torch.arange(4)
    visible, infrared, vp, ip = views((images, images.clone(), pids, pids))
    assert isinstance(visible, tuple) and len(visible) == 2 and isinstance(infrared, torch.Tensor)
    assert not torch.equal(visible[0], infrared)  # separate draws for each modality and view
    assert torch.equal(vp, pids) and torch.equal(ip, pids)
    chw = BatchAugment(view_spec(CFG, VISIBLE, "train"))
    torch.manual_seed(0)
    a = chw(images)
    torch.manual_seed(0)
    assert torch.equal(a, chw(images.permute(0, 3, 1, 2)))  # [B, 3, H, W] input reads the same
    with pytest.raises(DatasetError, match="uint8"):
        chw(images.float())


def test_draws_are_seeded_by_the_device_generator() -> None:
    augment = BatchAugment(view_spec(CFG, INFRARED, "caj"))
    images = _images(16)
    torch.manual_seed(42)
    first = augment(images)
    torch.manual_seed(42)
    assert torch.equal(first, augment(images))
    assert not torch.equal(first, augment(images))


@pytest.mark.parametrize("name,modality", [("caj", VISIBLE), ("erasing_grey_pad", INFRARED)])
def test_the_gather_form_a_gpu_takes_equals_the_loop_a_cpu_takes(name: str, modality: int) -> None:
    augment = BatchAugment(view_spec(CFG, modality, name))
    images = _images(32)
    draws = augment.sample(32, H, W)
    assert torch.equal(augment.apply(images, draws, gather=True), augment.apply(images, draws, gather=False))


def test_a_run_on_the_device_path_hands_over_uint8_and_trains_resumably(synthetic_sysu, tmp_path) -> None:
    """prepare(augment="device"): the loader yields the cached uint8 images untouched, the views are made per
    batch (CAJ-style layouts get a tuple), training runs on them, and a checkpoint refuses the other path."""
    from vireid_lib.engine.checkpoint import CheckpointError
    from vireid_lib.experiments.common import ExperimentError
    from vireid_lib.experiments import prepare
    from vireid_lib.experiments.runner import prepare as prepare_any

    settings = dict(data_root=str(synthetic_sysu), pretrained=False, arch="resnet18", height=64, width=32, workers=0,
                    device="cpu", progress=False, out_dir=str(tmp_path), epochs=1, batches_per_epoch=2, num_ids=2,
                    num_per_modality=2)
    run = prepare("mmn", "sysu", augment="device", **settings)
    assert run.train_config.augment == "device" and run.params["augment"] == "device"
    raw = next(iter(run.loader))
    visible_cache = run.loader.dataset.visible.images
    assert raw[0].dtype == torch.uint8 and raw[0].shape[1:] == (64, 32, 3)
    assert any(torch.equal(raw[0][0], torch.from_numpy(np.array(image))) for image in visible_cache)
    made = run.batch_transform(raw)
    inputs, labels = run.batch.unpack(made)
    per_sample = prepare("mmn", "sysu", augment="loader", **{**settings, "out_dir": str(tmp_path / "loader")})
    expected, expected_labels = per_sample.batch.unpack(next(iter(per_sample.loader)))
    assert [t.shape for t in inputs] == [t.shape for t in expected] and labels.shape == expected_labels.shape
    assert all(t.dtype == torch.float32 for t in inputs)
    result = run.train()
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])
    with pytest.raises(CheckpointError, match="augment"):
        prepare("mmn", "sysu", augment="loader", **{**settings, "epochs": 2}).train()
    assert prepare("mmn", "sysu", **settings).train_config.augment == "loader"  # auto: per image on the CPU
    with pytest.raises(ExperimentError, match="image papers"):
        prepare_any("cst", "vcm", augment="device", pretrained=False, device="cpu", workers=0)
