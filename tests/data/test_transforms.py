"""Tests for vireid_lib.data.transforms: shapes, exact values, and augmentation statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vireid_lib.data.errors import DatasetError
from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.transforms import (
    REID_ERASING_FILL,
    ChannelAdaptiveGray,
    ChannelExchange,
    ChannelRandomErasing,
    PadRandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    TransformConfig,
    apply_per_frame,
    build_test_transform,
    build_views,
    build_train_transform,
    to_uint8_chw,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SMALL = TransformConfig(height=16, width=8, pad=2)


def _random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _normalised(rgb: tuple[int, int, int]) -> list[float]:
    return [(v / 255.0 - m) / s for v, m, s in zip(rgb, MEAN, STD)]


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, exact values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pil", "array", "tensor"])
@pytest.mark.parametrize("in_size", [(288, 144), (300, 120)])
def test_output_shape_and_dtype(kind: str, in_size: tuple[int, int]) -> None:
    arr = _random_image(*in_size)
    image = {
        "pil": Image.fromarray(arr),
        "array": arr,
        "tensor": torch.from_numpy(arr).permute(2, 0, 1).contiguous(),
    }[kind]
    cfg = TransformConfig(random_erasing=0.5)
    torch.manual_seed(0)
    for transform in (
        build_train_transform(cfg, VISIBLE),
        build_train_transform(cfg, INFRARED),
        build_test_transform(cfg),
    ):
        out = transform(image)
        assert out.shape == (3, 288, 144)
        assert out.dtype == torch.float32
        assert out.is_contiguous()


def test_non_rgb_pil_is_converted() -> None:
    gray = Image.fromarray(np.full((16, 8), 100, dtype=np.uint8), mode="L")
    out = build_test_transform(SMALL)(gray)
    assert out.shape == (3, 16, 8)
    for c, expected in enumerate(_normalised((100, 100, 100))):
        assert torch.allclose(out[c], torch.full((16, 8), expected), atol=1e-6)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest", "lanczos"])
def test_test_transform_constant_image_matches_hand_computation(interpolation: str) -> None:
    rgb = (200, 100, 30)
    # 40 x 20 input so the resize to 16 x 8 actually runs; a constant image stays constant.
    arr = np.empty((40, 20, 3), dtype=np.uint8)
    arr[:] = rgb
    cfg = TransformConfig(height=16, width=8, interpolation=interpolation)
    out = build_test_transform(cfg)(arr)
    expected = _normalised(rgb)  # e.g. R: (200/255 - 0.485) / 0.229 = 1.3070...
    assert abs(expected[0] - 1.30704) < 1e-4
    for c in range(3):
        assert torch.allclose(out[c], torch.full((16, 8), expected[c]), atol=1e-5)


def test_test_transform_is_deterministic_and_preserves_pixels() -> None:
    arr = _random_image(16, 8)
    transform = build_test_transform(SMALL)
    torch.manual_seed(1)
    a = transform(arr)
    torch.manual_seed(2)
    b = transform(arr)
    assert torch.equal(a, b)
    # Already the target size: no resize, so each pixel is exactly (v/255 - mean)/std.
    r = arr[3, 5, 0]
    assert abs(a[0, 3, 5].item() - (r / 255.0 - MEAN[0]) / STD[0]) < 1e-5
    g = arr[7, 1, 1]
    assert abs(a[1, 7, 1].item() - (g / 255.0 - MEAN[1]) / STD[1]) < 1e-5


def test_input_array_is_not_modified() -> None:
    arr = _random_image(16, 8)
    before = arr.copy()
    cfg = TransformConfig(height=16, width=8, random_erasing=1.0, caj_erasing=1.0)
    torch.manual_seed(0)
    for _ in range(5):
        build_views(cfg, VISIBLE, ("train", "erasing", "caj"))(arr)
        build_views(cfg, INFRARED, ("caj",))(arr)
    assert np.array_equal(arr, before)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8), dtype=np.uint8),
        np.zeros((8, 8, 4), dtype=np.uint8),
        np.zeros((8, 8, 3), dtype=np.float32),
        torch.zeros(8, 8, 3, dtype=torch.uint8),
        "image.jpg",
    ],
)
def test_bad_inputs_raise_dataset_error(bad: object) -> None:
    with pytest.raises(DatasetError):
        to_uint8_chw(bad)


# ---------------------------------------------------------------------------------------------
# Geometric augmentation
# ---------------------------------------------------------------------------------------------


def test_flip_p1_mirrors_and_p0_is_identity() -> None:
    img = torch.from_numpy(_random_image(6, 5)).permute(2, 0, 1)
    flipped = RandomHorizontalFlip(1.0)(img)
    assert flipped.shape == img.shape
    assert torch.equal(flipped[:, :, 0], img[:, :, 4])
    assert torch.equal(flipped[:, 2, :], img[:, 2, :].flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(img), img)


def test_pad_crop_is_a_shift_with_zero_fill() -> None:
    img = torch.from_numpy(_random_image(12, 10)).permute(2, 0, 1)
    crop = PadRandomCrop(3)
    seen_shifts = set()
    torch.manual_seed(0)
    for _ in range(200):
        out = crop(img)
        assert out.shape == img.shape
        # Find the shift (dy, dx) in [-3, 3]^2 that explains the output: out[y, x] = img[y+dy, x+dx]
        # where in range, 0 elsewhere.
        match = None
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                expected = torch.zeros_like(img)
                ys, ye = max(0, dy), min(12, 12 + dy)
                xs, xe = max(0, dx), min(10, 10 + dx)
                expected[:, ys - dy : ye - dy, xs - dx : xe - dx] = img[:, ys:ye, xs:xe]
                if torch.equal(out, expected):
                    match = (dy, dx)
        assert match is not None
        seen_shifts.add(match)
    # 49 equally likely shifts, 200 draws: missing any is very unlikely but not needed;
    # require both extremes of each axis and the centre region to have occurred.
    assert len(seen_shifts) > 30
    assert {s[0] for s in seen_shifts} == set(range(-3, 4))
    assert {s[1] for s in seen_shifts} == set(range(-3, 4))


def test_train_transform_changes_image_but_keeps_shape() -> None:
    arr = _random_image(16, 8)
    test_out = build_test_transform(SMALL)(arr)
    train = build_train_transform(SMALL, VISIBLE)
    torch.manual_seed(0)
    outs = [train(arr) for _ in range(20)]
    assert all(o.shape == (3, 16, 8) for o in outs)
    assert any(not torch.equal(o, test_out) for o in outs)
    # Without pad and flip the train transform is the test transform.
    plain = TransformConfig(height=16, width=8, pad=0, flip=False)
    assert torch.equal(build_train_transform(plain, INFRARED)(arr), test_out)


def test_padding_is_zero_before_normalisation() -> None:
    arr = np.full((16, 8, 3), 255, dtype=np.uint8)
    cfg = TransformConfig(height=16, width=8, pad=4, flip=False)
    train = build_train_transform(cfg, VISIBLE)
    zero = torch.tensor(_normalised((0, 0, 0)))
    white = torch.tensor(_normalised((255, 255, 255)))
    torch.manual_seed(0)
    found_padding = False
    for _ in range(10):
        out = train(arr)
        pixels = out.permute(1, 2, 0).reshape(-1, 3)
        is_zero = torch.isclose(pixels, zero, atol=1e-5).all(dim=1)
        is_white = torch.isclose(pixels, white, atol=1e-5).all(dim=1)
        assert bool((is_zero | is_white).all())
        found_padding |= bool(is_zero.any())
    assert found_padding


# ---------------------------------------------------------------------------------------------
# Channel augmentations (CAJ)
# ---------------------------------------------------------------------------------------------


def _distinct_channels() -> torch.Tensor:
    torch.manual_seed(123)
    return torch.randn(3, 6, 4)


def test_channel_exchange_replicates_one_input_channel() -> None:
    x = _distinct_channels()
    before = x.clone()
    torch.manual_seed(0)
    chosen = []
    for _ in range(60):
        out = ChannelExchange()(x)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        matches = [c for c in range(3) if torch.equal(out[0], x[c])]
        assert len(matches) == 1
        chosen.append(matches[0])
    assert set(chosen) == {0, 1, 2}
    assert torch.equal(x, before)  # not in place by default


def test_channel_exchange_inplace_writes_into_input() -> None:
    x = _distinct_channels()
    out = ChannelExchange(inplace=True)(x)
    assert out.data_ptr() == x.data_ptr()
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_channel_adaptive_gray_frequencies() -> None:
    x = _distinct_channels()
    gray = 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    aug = ChannelAdaptiveGray()
    counts = {"r": 0, "g": 0, "b": 0, "gray": 0, "same": 0}
    torch.manual_seed(0)
    n = 4000
    for _ in range(n):
        out = aug(x)
        if torch.equal(out, x):
            counts["same"] += 1
        elif all(torch.equal(out[c], x[0]) for c in range(3)):
            counts["r"] += 1
        elif all(torch.equal(out[c], x[1]) for c in range(3)):
            counts["g"] += 1
        elif all(torch.equal(out[c], x[2]) for c in range(3)):
            counts["b"] += 1
        elif all(torch.allclose(out[c], gray, atol=1e-6) for c in range(3)):
            counts["gray"] += 1
        else:
            pytest.fail("ChannelAdaptiveGray produced an output matching none of its cases")
    expected = {"r": 0.25, "g": 0.25, "b": 0.25, "gray": 0.125, "same": 0.125}
    # The binomial std at n=4000 is <= 0.007; 0.04 is over 5 std, so this cannot flake.
    for key, p in expected.items():
        assert abs(counts[key] / n - p) < 0.04, (key, counts)


def test_channel_random_erasing_p1_fills_one_rectangle_with_constants() -> None:
    x = torch.full((3, 40, 20), 10.0)  # value far from every fill constant
    torch.manual_seed(0)
    for _ in range(50):
        out = ChannelRandomErasing(p=1.0)(x)
        erased = out[0] != 10.0
        assert erased.any()
        rows = torch.nonzero(erased.any(dim=1)).flatten()
        cols = torch.nonzero(erased.any(dim=0)).flatten()
        top, bottom = rows.min().item(), rows.max().item()
        left, right = cols.min().item(), cols.max().item()
        h, w = bottom - top + 1, right - left + 1
        # A solid rectangle: the bounding box is entirely erased and nothing outside it is.
        assert int(erased.sum()) == h * w
        assert bool(erased[top : bottom + 1, left : right + 1].all())
        for c in range(3):
            assert torch.allclose(out[c][erased], torch.tensor(REID_ERASING_FILL[c]))
            assert torch.equal(out[c][~erased], x[c][~erased])
        # Area 0.02-0.4 of 800 px (h, w are rounded, allow the rounding slack) and aspect 0.3-3.33.
        assert 0.02 * 800 * 0.7 <= h * w <= 0.4 * 800 * 1.3
        assert h < 40 and w < 20
    assert torch.equal(x, torch.full((3, 40, 20), 10.0))  # input untouched


def test_channel_random_erasing_p0_is_identity() -> None:
    x = _distinct_channels()
    torch.manual_seed(0)
    for _ in range(20):
        assert torch.equal(ChannelRandomErasing(p=0.0)(x), x)


def test_random_erasing_custom_fill() -> None:
    x = torch.full((3, 40, 20), 10.0)
    torch.manual_seed(0)
    out = RandomErasing(p=1.0, fill=(0.0, -1.0, 2.0))(x)
    erased = out[0] != 10.0
    assert torch.all(out[0][erased] == 0.0)
    assert torch.all(out[1][erased] == -1.0)
    assert torch.all(out[2][erased] == 2.0)


def test_cajs_views_through_the_one_views_api() -> None:
    """CAJ's batch: a visible image as its plain view (erasing) and its channel-exchanged one (caj), drawn apart."""
    arr = _random_image(16, 8)
    cfg = TransformConfig(height=16, width=8)
    torch.manual_seed(0)
    views = build_views(cfg, VISIBLE, ("erasing", "caj"))(arr)
    assert isinstance(views, tuple) and len(views) == 2
    standard, exchanged = views
    assert standard.shape == exchanged.shape == (3, 16, 8)
    for _ in range(10):
        _, exchanged = build_views(cfg, VISIBLE, ("erasing", "caj"))(arr)
        assert torch.equal(exchanged[0], exchanged[1]) and torch.equal(exchanged[1], exchanged[2])
    # The plain visible view keeps its colour (channels differ for a random image).
    plain = TransformConfig(height=16, width=8, pad=0, flip=False, caj_erasing=0.0)
    standard, _ = build_views(plain, VISIBLE, ("erasing", "caj"))(arr)
    assert torch.equal(standard, build_test_transform(plain)(arr))
    assert isinstance(build_views(cfg, INFRARED, ("caj",))(arr), torch.Tensor)  # one view: one tensor


def test_unknown_modality_raises() -> None:
    with pytest.raises(DatasetError, match="modality"):
        build_train_transform(SMALL, 2)


# ---------------------------------------------------------------------------------------------
# Video frames
# ---------------------------------------------------------------------------------------------


def test_apply_per_frame_independent_crops_and_shape() -> None:
    frame = _random_image(16, 8)
    frames = [frame] * 6
    train = build_train_transform(SMALL, VISIBLE)
    torch.manual_seed(0)
    out = apply_per_frame(train, frames)
    assert out.shape == (6, 3, 16, 8)
    assert out.dtype == torch.float32
    # Identical input frames, yet at least two come out different: each frame drew its own crop/flip.
    assert any(not torch.equal(out[0], out[i]) for i in range(1, 6))

    test = apply_per_frame(build_test_transform(SMALL), frames)
    assert test.shape == (6, 3, 16, 8)
    assert all(torch.equal(test[0], test[i]) for i in range(1, 6))


def test_apply_per_frame_gives_one_clip_per_view_and_rejects_empty_and_non_tensors() -> None:
    with pytest.raises(DatasetError, match="empty"):
        apply_per_frame(build_test_transform(SMALL), [])
    views = apply_per_frame(build_views(SMALL, VISIBLE, ("erasing", "caj")), [_random_image(16, 8) for _ in range(3)])
    assert isinstance(views, tuple) and len(views) == 2 and all(v.shape == (3, 3, 16, 8) for v in views)
    with pytest.raises(DatasetError, match="returning a tensor"):
        apply_per_frame(lambda frame: "not a tensor", [_random_image(16, 8)])


# ---------------------------------------------------------------------------------------------
# Config validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("height", 0),
        ("width", -5),
        ("height", 12.5),
        ("pad", -1),
        ("flip", "yes"),
        ("random_erasing", 1.5),
        ("random_erasing", -0.1),
        ("caj_erasing", 2.0),
        ("interpolation", "area"),
        ("erasing_fill", (0.0, 0.0)),
        ("mean", "abc"),
        ("std", (0.2, 0.0, 0.2)),
    ],
)
def test_bad_config_raises_dataset_error_naming_field(field: str, value: object) -> None:
    with pytest.raises(DatasetError, match=field):
        TransformConfig(**{field: value})


def test_bad_config_lists_valid_values() -> None:
    with pytest.raises(DatasetError, match="'bilinear'"):
        TransformConfig(interpolation="cubic")
    assert isinstance(DatasetError("x"), ValueError)


def test_named_views_add_the_caj_steps_and_the_grey_padding() -> None:
    from vireid_lib.data.transforms import VIEWS, build_view

    image = np.full((16, 8, 3), 200, dtype=np.uint8)
    cfg = TransformConfig(height=16, width=8, pad=3, flip=False, caj_erasing=0.0)
    torch.manual_seed(0)
    # MCE's RegDB pipeline pads with grey 127 (Pad(10, fill=127)): the crop's uncovered border shows it
    borders = set()
    for _ in range(40):
        out = build_view(cfg, VISIBLE, "erasing_grey_pad")(image)
        borders |= {round(v, 4) for v in out[0].flatten().tolist()}
    assert borders == {round(_normalised((200, 0, 0))[0], 4), round(_normalised((127, 0, 0))[0], 4)}
    # every view but "train" erases with CAJ's channel erasing; "caj" adds the modality's channel step
    colour = np.zeros((16, 8, 3), dtype=np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 30, 120, 220
    plain = TransformConfig(height=16, width=8, pad=0, flip=False, caj_erasing=0.0)
    exchanged = build_view(plain, VISIBLE, "caj")(colour)
    assert torch.equal(exchanged[0], exchanged[1]) and torch.equal(exchanged[1], exchanged[2])  # one channel in all three
    assert torch.equal(build_view(plain, INFRARED, "erasing")(colour), build_test_transform(plain)(colour))
    erased = TransformConfig(height=16, width=8, pad=0, flip=False, caj_erasing=1.0)
    assert not torch.equal(build_view(erased, VISIBLE, "erasing")(colour), build_test_transform(erased)(colour))
    assert set(VIEWS) == {"train", "erasing", "caj", "erasing_grey_pad", "exchange_erasing", "caj_of_previous"}
    with pytest.raises(DatasetError, match="training view 'mixup' is not known"):
        build_view(cfg, VISIBLE, "mixup")
