"""Small wording helpers shared by messages, tables and figures (no heavy imports)."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` with its noun in the right number: "1 frame", "2 frames" (``plural`` for an irregular one)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
