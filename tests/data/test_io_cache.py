"""Image decoding errors and the resized-image cache (built once, rebuilt on change)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import touch
from vireid_lib.data import INFRARED, VISIBLE, DatasetError, ImageRecord
from vireid_lib.data.cache import load_image_cache
from vireid_lib.data.io import read_image


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (40, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture()
def images(tmp_path: Path) -> list[ImageRecord]:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [
        ImageRecord(touch(tmp_path / f"cam1/0001/{k:04d}.jpg", jpeg_bytes(c)), 0, 1, VISIBLE if k < 3 else INFRARED)
        for k, c in enumerate(colours, start=1)
    ]


def test_read_image_decodes_to_rgb(images: list[ImageRecord]) -> None:
    image = read_image(images[0].path)
    assert image.mode == "RGB" and image.size == (40, 80)
    assert np.abs(np.asarray(image)[40, 20].astype(int) - (200, 30, 30)).max() < 6


def test_single_channel_infrared_decodes_to_three_equal_channels(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("L", (20, 40), 90).save(buffer, format="JPEG")
    image = np.asarray(read_image(touch(tmp_path / "ir.jpg", buffer.getvalue())))
    assert image.shape == (40, 20, 3)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert abs(int(image[20, 10, 0]) - 90) <= 2


def test_corrupt_and_truncated_images_are_named(tmp_path: Path) -> None:
    garbage = touch(tmp_path / "garbage.jpg", b"not an image at all")
    with pytest.raises(DatasetError, match=r"cannot decode image .*garbage.jpg.*corrupt or truncated"):
        read_image(garbage)
    truncated = touch(tmp_path / "truncated.jpg", jpeg_bytes((10, 20, 30))[:300])
    with pytest.raises(DatasetError, match=r"cannot decode image .*truncated.jpg"):
        read_image(truncated)
    with pytest.raises(DatasetError, match=r"image .*absent.jpg does not exist"):
        read_image(tmp_path / "absent.jpg")


def test_cache_holds_resized_images_in_record_order(images: list[ImageRecord], tmp_path: Path) -> None:
    array = load_image_cache(images, tmp_path, "demo", size=(16, 32), cache_dir=tmp_path / "cache", progress=False)
    assert array.shape == (3, 32, 16, 3) and array.dtype == np.uint8
    # a flat colour survives Lanczos resizing: each row is its own image's colour
    assert np.abs(array[:, 16, 8].astype(int) - [(200, 30, 30), (30, 200, 30), (30, 30, 200)]).max() < 6


def test_cache_is_reused_then_rebuilt_when_size_or_source_changes(images: list[ImageRecord], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_image_cache(images, tmp_path, "demo", size=(16, 32), cache_dir=cache, progress=False)
    (npy,) = cache.glob("demo_*_16x32.npy")
    built = npy.stat().st_mtime_ns
    load_image_cache(images, tmp_path, "demo", size=(16, 32), cache_dir=cache, progress=False)
    assert npy.stat().st_mtime_ns == built  # reused, not rewritten
    # a new size is a different cache
    assert load_image_cache(images, tmp_path, "demo", size=(8, 16), cache_dir=cache, progress=False).shape == (3, 16, 8, 3)
    # a changed source image rebuilds the cache with the new pixels
    touch(images[0].path, jpeg_bytes((0, 0, 0)))
    os.utime(images[0].path, ns=(built + 10**9, built + 10**9))
    rebuilt = load_image_cache(images, tmp_path, "demo", size=(16, 32), cache_dir=cache, progress=False)
    assert rebuilt[0].max() < 10
    assert not list(cache.glob("*.tmp*"))


def test_cache_build_names_a_corrupt_image_and_leaves_no_partial_file(images: list[ImageRecord], tmp_path: Path) -> None:
    touch(images[1].path, b"\xff\xd8broken")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"0002.jpg"):
        load_image_cache(images, tmp_path, "demo", size=(16, 32), cache_dir=cache, progress=False)
    assert not list(cache.glob("*.npy*"))


def test_cache_rejects_bad_arguments(images: list[ImageRecord], tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="resample='cubic'"):
        load_image_cache(images, tmp_path, "demo", resample="cubic", cache_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"size=\(0, 32\)"):
        load_image_cache(images, tmp_path, "demo", size=(0, 32), cache_dir=tmp_path)
