"""Feature extraction for the protocol runners: order, modality routing, flip averaging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vireid_lib.data import HITSZVCM, SYSUMM01
from vireid_lib.data.io import read_image
from vireid_lib.data.transforms import TransformConfig, build_test_transform
from vireid_lib.engine import make_extractor

SMALL = TransformConfig(height=32, width=16)


class TinyConv(nn.Module):
    """Two stems, a shared body; tracklet clips [B, S, C, H, W] are averaged over frames."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.visible = nn.Conv2d(3, 4, 3, padding=1)
        self.infrared = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Linear(4 * 32 * 16, 8)

    def forward(self, visible, infrared):
        x = visible if visible is not None else infrared
        stem = self.visible if visible is not None else self.infrared
        frames = x.shape[1] if x.ndim == 5 else 1
        f = self.body(stem(x.flatten(0, 1) if x.ndim == 5 else x).flatten(1))
        return {"embedding": f.view(-1, frames, f.shape[1]).mean(1)}


def test_rows_follow_the_records_and_each_modality_uses_its_stem(synthetic_sysu: Path) -> None:
    visible, infrared = SYSUMM01(synthetic_sysu).train()
    records = [visible[0], infrared[0], visible[1], infrared[1]]
    model = TinyConv().train()
    extract = make_extractor(model, build_test_transform(SMALL), batch_size=3)
    mixed = extract(records)
    assert mixed.shape == (4, 8) and model.training  # restored afterwards
    one_by_one = np.concatenate([extract([r]) for r in records])
    np.testing.assert_allclose(mixed, one_by_one, rtol=1e-5, atol=1e-6)
    # the same image through the other stem gives another feature
    swapped = type(visible[0])(visible[0].path, visible[0].pid, visible[0].camid, infrared[0].modality)
    assert not np.allclose(extract([swapped]), mixed[:1])


def test_flip_averaging_is_the_mean_of_both_views(synthetic_sysu: Path) -> None:
    record = SYSUMM01(synthetic_sysu).query()[0]
    model = TinyConv()
    transform = build_test_transform(SMALL)
    flipped = make_extractor(model, transform, flip=True)([record])
    with torch.no_grad():
        image = transform(read_image(record.path))[None]
        plain = model(None, image)["embedding"]
        mirror = model(None, torch.flip(image, dims=[-1]))["embedding"]
    np.testing.assert_allclose(flipped[0], ((plain + mirror) / 2)[0].numpy(), rtol=1e-5, atol=1e-6)


def test_tracklets_are_sampled_with_the_test_rule(synthetic_vcm: Path) -> None:
    split = HITSZVCM(synthetic_vcm).split("ir2rgb")
    features = make_extractor(TinyConv(), build_test_transform(SMALL), seq_len=4)(split.query[:3])
    assert features.shape == (3, 8) and np.isfinite(features).all()


def test_channels_last_extraction_gives_the_same_features(synthetic_sysu: Path, tmp_path: Path) -> None:
    from vireid_lib.experiments import prepare

    settings = dict(data_root=str(synthetic_sysu), pretrained=False, arch="resnet18", height=64, width=32, workers=0,
                    device="cpu", progress=False, out_dir=str(tmp_path))
    plain, fast = prepare("agw", "sysu", **settings), prepare("agw", "sysu", channels_last=True, **settings)
    assert fast.train_config.channels_last and fast.params["channels_last"]
    records = fast.reader.query()[:6]
    reference = plain.extractor()(records)
    features = fast.extractor()(records)
    conv = fast.model.backbone.layer1[0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-5)


def test_cached_uint8_extraction_equals_the_per_image_float_pipeline(synthetic_sysu: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    """The loader hands over uint8 and the batch is normalised on the device, from a test-image cache built by the
    transform's own resize: the same input values, so the same features; a second call decodes nothing, and a
    changed file rebuilds the cache."""
    import shutil

    import vireid_lib.data.cache as cache_module
    from vireid_lib.data.cache import load_test_cache
    from vireid_lib.data.records import ImageRecord
    from vireid_lib.engine.extract import split_normalize

    monkeypatch.setenv("VIREID_CACHE", str(tmp_path / "cache"))
    copies = tmp_path / "images"
    copies.mkdir()
    records = []
    for i, r in enumerate(SYSUMM01(synthetic_sysu).query()[:5]):
        shutil.copy(r.path, copies / f"{i}.jpg")
        records.append(ImageRecord(copies / f"{i}.jpg", r.pid, r.camid, r.modality))
    transform = build_test_transform(SMALL)
    model = TinyConv().eval()
    seen: list[torch.Tensor] = []
    original = model.forward
    model.forward = lambda v, i: seen.append(i) or original(v, i)
    reference = torch.stack([transform(read_image(r.path)) for r in records])
    extract = make_extractor(model, transform, batch_size=2, cache=True, size=(SMALL.height, SMALL.width))
    features = extract(records)
    assert torch.equal(torch.cat(seen), reference)  # the model saw the per-image pipeline's values, bit for bit
    with torch.no_grad():
        np.testing.assert_allclose(features, original(None, reference)["embedding"].numpy(), rtol=1e-5, atol=1e-6)
    uint8_part, normalize = split_normalize(transform)
    assert normalize is not None
    cached = load_test_cache(records, uint8_part, (SMALL.height, SMALL.width))
    assert cached.dtype == np.uint8 and cached.shape == (5, SMALL.height, SMALL.width, 3)
    assert np.array_equal(cached[0], uint8_part(read_image(records[0].path)).permute(1, 2, 0).numpy())

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although the cache holds it")

    monkeypatch.setattr(cache_module, "read_image", no_decoding)
    seen.clear()
    np.testing.assert_array_equal(extract(records), features)
    assert torch.equal(torch.cat(seen), reference)
    monkeypatch.undo()
    monkeypatch.setenv("VIREID_CACHE", str(tmp_path / "cache"))
    shutil.copy(records[1].path, records[0].path)  # another picture under the same name: rebuilt, not stale
    assert np.array_equal(load_test_cache(records, uint8_part, (SMALL.height, SMALL.width))[0], cached[1])


def test_flip_averaging_runs_images_and_mirrors_in_one_forward_pass() -> None:
    from vireid_lib.engine.extract import embed

    calls = []
    model = TinyConv().eval()
    original = model.forward

    def counting(*args):
        calls.append(next(a for a in args if a is not None).shape[0])
        return original(*args)

    model.forward = counting
    images = torch.randn(3, 3, 32, 16)
    features = embed(model, images, modality=0, flip=True)
    assert calls == [6]
    with torch.no_grad():
        expected = (original(images, None)["embedding"] + original(images.flip(-1), None)["embedding"]) / 2
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
