"""A cache of training images resized once to uint8 arrays (the official SYSU preprocessing).

The official ``pre_process_sysu.py`` resizes every training image to 144 x 288 with Lanczos
filtering and saves the arrays, so training never decodes a JPEG. This module does the same
for any list of image records, keyed by a fingerprint of the sources (relative path, size and
modification time of every file) and of the target size: when either changes the cache is
rebuilt, otherwise it is memory-mapped. Writes go to a temporary file renamed into place,
so an interrupted build never leaves a half-written cache behind; the file's disk space is
reserved before the first image is written, so a full disk is an error naming the cache and the
bytes it needs rather than a crash.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..progress import progress as show
from .errors import DatasetError
from .io import read_image
from .records import ImageRecord

RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$VIREID_CACHE`` if set, else ``~/.cache/vireid``."""
    return Path(os.environ.get("VIREID_CACHE", Path.home() / ".cache" / "vireid"))


def fingerprint(records: Sequence[ImageRecord], root: Path, size: tuple[int, int], resample: str) -> str:
    digest = hashlib.sha256(f"v{CACHE_FORMAT}|{size[0]}x{size[1]}|{resample}".encode())
    for record in records:
        stat = Path(record.path).stat()
        digest.update(f"\n{Path(record.path).relative_to(root).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def resize_image(path: Path, size: tuple[int, int], resample: str = "lanczos") -> np.ndarray:
    """One image decoded to RGB and resized to ``size`` = (width, height) as uint8 HxWx3."""
    return np.asarray(read_image(path).resize(size, RESAMPLE[resample]), dtype=np.uint8)


def load_image_cache(
    records: Sequence[ImageRecord],
    root: Path | str,
    name: str,
    size: tuple[int, int] = (144, 288),
    resample: str = "lanczos",
    cache_dir: Path | str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """The images of ``records`` as an ``[N, H, W, 3]`` uint8 array, built once and memory-mapped.

    ``name`` identifies the cache among others in ``cache_dir`` (e.g. ``sysu_train_visible``);
    ``size`` is (width, height) as in PIL, the official 144 x 288 by default.
    """
    if resample not in RESAMPLE:
        raise DatasetError(f"resample={resample!r} is not known; use one of {sorted(RESAMPLE)}.")
    if len(size) != 2 or min(size) < 1:
        raise DatasetError(f"cache size={size!r} must be (width, height) with positive integers.")
    root = Path(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    root_tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    array_path = cache_dir / f"{name}_{root_tag}_{size[0]}x{size[1]}.npy"
    key = fingerprint(records, root, size, resample)

    def fill(array: np.ndarray) -> None:
        for i, record in enumerate(show(records, desc=f"caching {name} at {size[0]}x{size[1]}", enabled=progress, unit="image")):
            array[i] = resize_image(Path(record.path), size, resample)

    meta = {"fingerprint": key, "count": len(records), "size": list(size), "resample": resample, "root": str(root)}
    return _cached_array(array_path, (len(records), size[1], size[0], 3), fill, meta)


def _human(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def _no_room(array_path: Path, needed: int) -> DatasetError:
    folder = array_path.parent
    free = shutil.disk_usage(folder).free
    # The outdated cache this one replaces is removed only once the new one is whole.
    outdated = (f" The outdated {array_path.name} there ({array_path.stat().st_size:,} bytes) is replaced by this "
                "build; deleting it first frees its space." if array_path.is_file() else "")
    return DatasetError(
        f"no room for the image cache {array_path}: it needs {needed:,} bytes ({_human(needed)}) and the "
        f"disk holding {folder} has {free:,} bytes ({_human(free)}) free. Free space there, or set "
        f"VIREID_CACHE to a folder on a disk with room (or pass cache_dir=); no partial file was left.{outdated}"
    )


def _allocate(tmp: Path, array_path: Path) -> None:
    """Reserve the disk blocks of the whole cache file ``tmp`` before any image is written into its map.

    ``open_memmap`` makes a sparse file; writing into a memory-mapped page that the full disk cannot
    back kills the process with SIGBUS ("Bus error") mid-build, with no Python error to say why.
    ``posix_fallocate`` fails cleanly instead (ENOSPC); where it is missing, the free space is compared.
    """
    needed = tmp.stat().st_size
    if not hasattr(os, "posix_fallocate"):
        if shutil.disk_usage(tmp.parent).free < needed:
            raise _no_room(array_path, needed)
        return
    fd = os.open(tmp, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, needed)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_room(array_path, needed) from err
        # A file system that cannot preallocate (EOPNOTSUPP, EINVAL): fall back on the free space.
        if shutil.disk_usage(tmp.parent).free < needed:
            raise _no_room(array_path, needed) from err
    finally:
        os.close(fd)


def _cached_array(array_path: Path, shape: tuple[int, ...], fill, meta: dict) -> np.ndarray:
    """The uint8 array at ``array_path`` when its JSON beside it holds ``meta["fingerprint"]`` and its shape is
    ``shape``; otherwise built by ``fill(array)`` into a temporary file renamed into place (an interrupted
    build leaves nothing behind), then memory-mapped read-only."""
    meta_path = array_path.with_suffix(".json")
    if array_path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("fingerprint") == meta["fingerprint"]:
                array = np.load(array_path, mmap_mode="r")
                if array.shape == shape:
                    return array
        except (ValueError, OSError):
            pass  # an unreadable cache is simply rebuilt
    tmp = array_path.with_name(array_path.name + f".tmp{os.getpid()}")
    array = None
    try:
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        except OSError as err:  # a disk too full for even the header
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _no_room(array_path, int(np.prod(shape))) from err
            raise
        _allocate(tmp, array_path)
        fill(array)
        array.flush()
        array = None
        os.replace(tmp, array_path)
    finally:
        array = None  # the map is closed before its file is removed (a traceback would keep it open)
        if tmp.exists():
            tmp.unlink()
    meta_tmp = meta_path.with_name(meta_path.name + f".tmp{os.getpid()}")
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, meta_path)
    return np.load(array_path, mmap_mode="r")


class _Resized:
    """Records decoded and brought to the cache's size by a transform's uint8 steps (for a DataLoader)."""

    def __init__(self, records: Sequence[ImageRecord], transform) -> None:
        self.records, self.transform = list(records), transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> np.ndarray:
        image = self.transform(read_image(self.records[index].path))
        return image.permute(1, 2, 0).contiguous().numpy()


def load_test_cache(
    records: Sequence[ImageRecord],
    transform,
    size: tuple[int, int],
    cache_dir: Path | str | None = None,
    workers: int = 0,
) -> np.ndarray:
    """The test images of ``records`` as an ``[N, H, W, 3]`` uint8 array, built once and memory-mapped.

    ``transform`` is the test transform's uint8 part (decode, resize to ``size`` = (height,
    width)), so a cached image is exactly what the transform would make of the file again and
    features do not depend on the cache. The array is keyed by the record list (file names) and
    checked against every file's size and modification time, like :func:`load_image_cache`;
    written to a temporary file and renamed, so an interrupted build leaves nothing behind.
    ``workers`` loader processes decode while the main process writes.
    """
    from torch.utils.data import DataLoader

    height, width = size
    cache_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "test"
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(Path(r.path).resolve()) for r in records]
    tag = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    recipe = getattr(transform, "steps", [transform])
    key = f"test|{height}x{width}|{[type(s).__name__ + str(getattr(s, 'interpolation', '')) for s in recipe]}"
    root = Path(os.path.commonpath(paths)) if len(paths) > 1 else Path(paths[0]).parent
    array_path = cache_dir / f"test_{tag}_{width}x{height}.npy"
    digest = fingerprint([ImageRecord(p, r.pid, r.camid, r.modality) for p, r in zip(paths, records)], root,
                         (width, height), key)

    def fill(array: np.ndarray) -> None:
        loader = DataLoader(_Resized(records, transform), batch_size=64, num_workers=workers, collate_fn=np.stack)
        start = 0
        for rows in loader:
            if rows.shape[1:] != (height, width, 3):
                raise DatasetError(f"the test transform made {rows.shape[1:3]} images, not {height} x {width}; "
                                   "pass the size it resizes to.")
            array[start:start + len(rows)] = rows
            start += len(rows)

    meta = {"fingerprint": digest, "count": len(records), "size": [height, width]}
    return _cached_array(array_path, (len(records), height, width, 3), fill, meta)
