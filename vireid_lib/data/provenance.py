"""Whether a dataset is the real one, decided by the data itself.

A folder is the real SYSU-MM01, RegDB, LLCM, HITSZ-VCM or BUPTCampus only when its splits have the
sizes the dataset publishes (PROTOCOLS.md; each reader's ``PUBLISHED``, measured by its ``sizes``):
a copied synthetic twin without its marker file, a subset, or a re-made layout is not, however it is
named. Three kinds:

* ``synthetic``: written by this workbook's generator (its marker file is there);
* ``real``: every published size matches;
* ``custom``: anything else in a real layout (a subset, another collection, an edited twin).

Only ``real`` runs stand beside a paper's numbers; a record keeps the measured sizes so the
README generator can check the claim again.

Sizes say what a dataset is, not which copy of it: :func:`fingerprint` does that, a short digest
of a dataset's files (every file's name and size, and the content of a few spread over the list),
cheap enough for every run start and unchanged when the dataset is copied or moved. A skeleton
store keeps the fingerprint of the frames it was extracted from, so that keypoints of one copy are
never continued or read beside the images of another.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError
from .io import path_problem

DATA_KINDS = ("real", "synthetic", "custom")


def measure(reader, trial: int | None = 1) -> dict[str, int]:
    """The split sizes of ``reader``'s copy that its class's ``PUBLISHED`` lists (the reader's ``sizes``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # split warnings (short folders, unmatched queries) are reported elsewhere
        return reader.sizes(trial)


def is_published(reader, sizes: dict) -> bool:
    """True when ``sizes`` are exactly the published sizes of the dataset of ``reader`` (a reader or its class:
    the class's ``PUBLISHED``)."""
    return dict(sizes or {}) == dict(published(reader))


def published(reader) -> dict[str, int]:
    """The published split sizes of the dataset of ``reader`` (a reader or its class)."""
    return (reader if isinstance(reader, type) else type(reader)).PUBLISHED


def data_kind(root: Path | str, reader, trial: int | None = 1) -> tuple[str, dict[str, int]]:
    """(kind, measured sizes) of the dataset ``reader`` reads at ``root`` (see the module doc)."""
    # Imported here: the synthetic writers fingerprint their skeleton stores with this module.
    from .synthetic import is_synthetic

    sizes = measure(reader, trial)
    if is_synthetic(root):
        return "synthetic", sizes
    return ("real" if is_published(reader, sizes) else "custom"), sizes


# -- which copy of a dataset --------------------------------------------------------------
FINGERPRINT_SAMPLE = 16
# Part of every digest: raised when what is hashed changes, so that old fingerprints never match new ones.
_FINGERPRINT_FORMAT = "vireid-fingerprint/1"
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """What :func:`file_fingerprint` measured: the digest, how many files it covers, and the sampled files.

    ``sampled`` holds ``(name, size in bytes, sha256 of the content)`` of every file whose content went
    into the digest; kept beside the digest (e.g. in a skeleton store), they let a later run check just
    those few files (:func:`sample_digest`) where the whole file list is not at hand.
    """

    digest: str
    files: int
    sampled: tuple[tuple[str, int, str], ...]

    def sampled_json(self) -> str:
        return json.dumps([list(entry) for entry in self.sampled])

    @staticmethod
    def sampled_from_json(text: str) -> tuple[tuple[str, int, str], ...]:
        return tuple((str(name), int(size), str(sha)) for name, size, sha in json.loads(text))


def _file_size(name: str, path: Path | str) -> int:
    try:
        info = os.stat(path)
    except OSError as err:
        raise DatasetError(
            f"cannot fingerprint the dataset: its file {name} ({path}) {path_problem(Path(path), 'file') or err}. "
            "The file list names it, so the copy is incomplete: copy or extract the dataset again."
        ) from err
    if not stat.S_ISREG(info.st_mode):
        raise DatasetError(f"cannot fingerprint the dataset: {path} (listed as {name}) is a folder or a special file, "
                           "not an image; the file list should name only files.")
    return info.st_size


def _content_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def spread(count: int, sample: int) -> list[int]:
    """``sample`` indices spread evenly over ``range(count)``, first and last included (all when fewer)."""
    if sample >= count:
        return list(range(count))
    if sample == 1:
        return [0]
    return [i * (count - 1) // (sample - 1) for i in range(sample)]


def _digest(sizes: Sequence[tuple[str, int]], sampled: Sequence[tuple[str, int, str]]) -> str:
    # NUL cannot occur in a file name, so no two different lists hash the same text.
    digest = hashlib.sha256(f"{_FINGERPRINT_FORMAT}\n".encode())
    for name, size in sizes:
        digest.update(f"{name}\0{size}\n".encode())
    digest.update(b"sampled content\n")
    for name, _, sha in sampled:
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()[:16]


def file_fingerprint(files: Mapping[str, Path | str], sample: int = FINGERPRINT_SAMPLE) -> Fingerprint:
    """The fingerprint of ``files`` (``{name: path}``; the names, e.g. paths relative to the dataset root,
    are what the digest sees, never the paths): :func:`fingerprint` with the names chosen by the caller."""
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise DatasetError(f"sample={sample!r} must be a non-negative integer: how many files' content to hash "
                           f"(default {FINGERPRINT_SAMPLE}).")
    names = sorted(files)
    sizes = [(name, _file_size(name, files[name])) for name in names]
    sampled = tuple((names[i], sizes[i][1], _content_sha256(files[names[i]])) for i in spread(len(names), sample))
    return Fingerprint(_digest(sizes, sampled), len(names), sampled)


def sample_digest(sampled: Sequence[tuple[str, int, str]]) -> str:
    """A digest of sampled files alone, ``(name, size, sha256)`` each (order does not matter): compare the
    stored sample of a :class:`Fingerprint` with the same files measured now."""
    entries = sorted(sampled)
    return _digest([(name, size) for name, size, _ in entries], entries)


def measure_sample(files: Mapping[str, Path | str]) -> tuple[tuple[str, int, str], ...]:
    """``(name, size, sha256)`` of each of ``files`` now, sorted by name (the other side of :func:`sample_digest`)."""
    return tuple((name, _file_size(name, files[name]), _content_sha256(files[name])) for name in sorted(files))


def fingerprint(paths: Sequence[Path | str], root: Path | str, sample: int = FINGERPRINT_SAMPLE) -> str:
    """A 16-hex-digit digest of which files a dataset holds: every path's name relative to ``root`` with
    its size in bytes, plus the sha256 of the whole content of ``sample`` files spread evenly over the
    sorted names (first and last included; every file when there are no more than ``sample``).

    Modification times and ``root`` itself do not enter it, so a copied or moved dataset keeps its
    fingerprint; a file replaced by one of another size changes it, and so does one of the same size
    when it is among the sampled files. (A same-size replacement outside the sample goes unseen: the
    price of reading ``sample`` files instead of all of them.) Relative ``paths`` are taken inside
    ``root``; a missing file is a :class:`DatasetError` naming it.
    """
    base = os.path.abspath(root)
    prefix = base.rstrip(os.sep) + os.sep
    files: dict[str, str] = {}
    for path in paths:
        # abspath and a prefix test: Path.relative_to costs several times more over 200k frames.
        full = os.path.abspath(os.path.join(base, path))
        if not full.startswith(prefix):
            raise DatasetError(f"cannot fingerprint {path}: it is not inside the dataset root {root}. "
                               "Pass the root that holds every listed file.")
        files[full[len(prefix):].replace(os.sep, "/")] = full
    return file_fingerprint(files, sample).digest
