"""The papers: one module each (network, criterion, recipe, declaration), found here by discovery.

Every module of this package that declares ``PAPER`` (or ``PAPERS``, a paper and its own baseline) is a
paper; no list names them, so adding a paper is adding its module (the interface it fills in is
:mod:`vireid_lib.interface`). A paper declared elsewhere (a notebook's experiment, a test's toy paper)
joins them through :func:`register`. Modules whose name starts with ``_`` are helpers, not papers.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..interface import BatchLayout, Deviation, Hooks, Keep, Paper, Recipe, Selection, Variant

__all__ = ["BatchLayout", "Deviation", "Hooks", "Keep", "Paper", "Recipe", "Selection", "Variant", "declaring_modules",
           "paper", "papers", "register", "workbook_papers"]

_REGISTERED: dict[str, Paper] = {}


def declaring_modules() -> list[str]:
    """The dotted names of this package's paper modules, in name order."""
    return [f"{__name__}.{info.name}" for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
            if not info.name.startswith("_") and not info.ispkg]


def register(declaration: Paper) -> Paper:
    """Make a paper declared outside this package (a notebook's experiment, a test's toy paper) runnable by its
    method key, like the workbook's own; returns it."""
    _REGISTERED[declaration.method] = declaration
    return declaration


def workbook_papers() -> dict[str, Paper]:
    """The workbook's own declarations by method key (no paper registered at run time)."""
    found: dict[str, Paper] = {}
    for name in declaring_modules():
        module = importlib.import_module(name)
        declared = getattr(module, "PAPERS", None) or ((module.PAPER,) if hasattr(module, "PAPER") else ())
        for declaration in declared:
            if declaration.method in found:
                raise ValueError(f"method {declaration.method!r} is declared twice ({name} and another module); "
                                 "every paper needs its own method key.")
            found[declaration.method] = declaration
    return found


def papers() -> dict[str, Paper]:
    """Every declared paper by its method key (the workbook's, then any registered)."""
    return {**workbook_papers(), **_REGISTERED}


def paper(method: str) -> Paper:
    known = papers()
    if method not in known:
        raise KeyError(f"method={method!r} is not a declared paper; use one of {sorted(known)}.")
    return known[method]
