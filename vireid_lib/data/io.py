"""File-system helpers shared by the readers: existence checks and image decoding.

Every failure here raises :class:`DatasetError` naming the path and the fix, because a
KeyError three frames deep in a DataLoader worker tells a researcher nothing.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import DatasetError


def _missing(path: Path, err: OSError) -> str:
    """Why a path that cannot be stat-ed is not there, naming the part of it that is missing."""
    if err.errno == errno.ELOOP:
        return "is a symbolic link loop: following its links leads back to itself"
    if path.is_symlink():
        return f"is a broken symbolic link: it points to {os.readlink(path)}, which does not exist"
    tilde = " (a leading ~ is not expanded here: write the full path)" if path.parts and path.parts[0].startswith("~") else ""
    for ancestor in path.parents:
        try:
            info = ancestor.stat()
        except PermissionError:
            return f"cannot be reached: permission denied on {ancestor}"
        except OSError:
            if ancestor.is_symlink():
                return f"does not exist: {ancestor}, on its way, is a broken symbolic link (to {os.readlink(ancestor)})"
            continue
        if not stat.S_ISDIR(info.st_mode):
            return f"cannot exist: it lies inside {ancestor}, which is a file, not a folder"
        missing = path.relative_to(ancestor).parts[0]
        where = f"the current folder {Path.cwd()}" if ancestor == Path(".") else str(ancestor)
        return f"does not exist: {where} exists but holds no {missing!r}{tilde}"
    return f"does not exist ({err.strerror}){tilde}"


def path_problem(path: Path, kind: str = "folder") -> str | None:
    """Why ``path`` is not a usable ``kind`` (``"folder"`` or ``"file"``), as words that follow the path in a
    message; None when it is one.

    A data root that is a file, lies inside a file or is a broken link is said to be exactly that, and a
    missing one names the deepest folder of it that does exist, so that a typo is found in one look
    ("does not exist" alone sends people to check the wrong part).
    """
    try:
        info = path.stat()
    except PermissionError:
        return "cannot be read: permission denied (on it or on a folder above it)"
    except OSError as err:
        return _missing(path, err)
    if kind == "folder":
        if stat.S_ISDIR(info.st_mode):
            return None
        return "is a file, not a folder" if stat.S_ISREG(info.st_mode) else "is not a folder (a device, pipe or socket)"
    if stat.S_ISREG(info.st_mode):
        return None
    return "is a folder, not a file" if stat.S_ISDIR(info.st_mode) else "is not a regular file (a device, pipe or socket)"


def require_dir(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a folder, else a :class:`DatasetError` saying what it is instead (see :func:`path_problem`)."""
    problem = path_problem(path, "folder")
    if problem:
        raise DatasetError(f"{what} {path} {problem}. {hint}")
    return path


def require_file(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a regular file, else a :class:`DatasetError` saying what it is instead."""
    problem = path_problem(path, "file")
    if problem:
        raise DatasetError(f"{what} {path} {problem}. {hint}")
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
