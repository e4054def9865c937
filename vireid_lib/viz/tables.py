"""Tables for reading: the columns a reader needs first, numbers rounded, a caption saying what they are."""

from __future__ import annotations

import pandas as pd


def table(frame: pd.DataFrame, caption: str | None = None, digits: int = 2):
    """A styled, index-free view of ``frame`` for a notebook; ``caption`` defaults to ``frame.attrs["caption"]``.

    The caption travels with the table (it is part of the HTML a saved notebook keeps), so a
    note such as "synthetic data: no difference to the paper is computed" cannot be lost.
    """
    caption = caption if caption is not None else frame.attrs.get("caption")
    styled = frame.style.hide(axis="index").format(precision=digits, na_rep="—")
    if caption:
        styled = styled.set_caption(caption).set_table_styles(
            [{"selector": "caption", "props": "caption-side: top; text-align: left; font-style: italic;"}])
    return styled
