"""File-system helpers shared by the readers: existence checks and image decoding.

Every failure here raises :class:`DatasetError` naming the path and the fix, because a
KeyError three frames deep in a DataLoader worker tells a researcher nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import DatasetError


def require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"{what} {path} {state}. {hint}")
    return path


def require_file(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        state = "is a folder, not a file" if path.exists() else "does not exist"
        raise DatasetError(f"{what} {path} {state}. {hint}")
    return path


def read_text_lines(path: Path, what: str, hint: str) -> list[str]:
    """The file's lines without line endings; an unreadable or binary file is a DatasetError."""
    require_file(path, what, hint)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DatasetError(f"{what} {path} is not a text file ({err}). {hint}") from err


def sorted_entries(folder: Path) -> list[str]:
    """Names in a folder sorted as the official code sorts ``os.listdir``: by plain string."""
    return sorted(os.listdir(folder))


def read_image(path: Path | str) -> Image.Image:
    """Decode an image fully into RGB.

    ``Image.open`` is lazy, so a truncated JPEG would otherwise only fail later inside a
    worker; ``convert`` forces the decode here, where the path is still known.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise DatasetError(
            f"image {path} does not exist. The dataset's metadata names it: check that the "
            "image folders were extracted completely under the dataset root."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(
            f"cannot decode image {path}: {err}. The file is corrupt or truncated; extract it "
            "again from the dataset archive (or delete and regenerate a synthetic dataset)."
        ) from err
