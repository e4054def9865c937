"""Small file-writing helpers for tests that build dataset layouts by hand."""

from __future__ import annotations

from pathlib import Path


def touch(path: Path, content: bytes = b"") -> Path:
    """Create ``path`` (and its folders) holding ``content``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def write(path: Path, text: str) -> Path:
    return touch(path, text.encode())
