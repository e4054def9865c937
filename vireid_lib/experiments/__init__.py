"""Runs of the declared papers: :func:`prepare` builds one from a paper's declaration and a notebook's
:func:`parameters`; :class:`~.image.ImageRun` and :class:`~.video.VideoRun` hold what differs between datasets.
The arrows go one way: notebooks -> experiments -> papers, engine, eval -> data."""

from .common import ExperimentError, PaperRun
from .params import SHARED, beside, parameters
from .runner import prepare

__all__ = ["SHARED", "ExperimentError", "PaperRun", "beside", "parameters", "prepare"]
