"""Figures the notebooks show, one module per family:

* :mod:`.curves`: CMC curves, training curves and the spread of trials across papers;
* :mod:`.samples`: sample images, clips, tracklet lengths;
* :mod:`.ranked`: ranked lists and the query browser;
* :mod:`.activation`: activation maps of the image models;
* :mod:`.attention`: attention maps of the video transformers;
* :mod:`.memory`: identity memories (MCE) in 2-D and their cross-modal similarity;
* :mod:`.tables`: tables styled for reading, with their caption;
* :mod:`.skeleton`: COCO-17 skeletons on their frames and STAR's graph, joint, pooling and frame attention.

Every function returns a matplotlib Figure built without pyplot: nothing is shown, saved or
kept in pyplot's global state, so a notebook displays exactly what a cell returns (once) and a
test can inspect it. Heat maps are drawn relative to their mean on a labelled colour bar.
"""

from .activation import activation_maps, plot_activation_maps
from .attention import plot_clip_attention, plot_frame_gates, plot_message_attention
from .common import MATCH, MISMATCH, denormalise
from .curves import plot_cmc, plot_training, plot_trial_spread
from .memory import plot_memory_evolution
from .ranked import plot_ranked_list, ranked_list_browser
from .samples import plot_image_pairs, plot_tracklet_lengths, show_clips, show_samples
from .skeleton import (
    plot_frame_attention, plot_graph_attention, plot_joint_importance, plot_pooling_weights, plot_skeleton_clip,
)
from .tables import table

__all__ = [
    "MATCH", "MISMATCH", "activation_maps", "denormalise", "plot_activation_maps", "plot_clip_attention", "plot_cmc", "plot_frame_gates",
    "plot_image_pairs", "plot_memory_evolution", "plot_message_attention", "plot_ranked_list", "plot_tracklet_lengths", "plot_training", "plot_trial_spread", "ranked_list_browser",
    "show_clips", "show_samples", "table",
    "plot_frame_attention", "plot_graph_attention", "plot_joint_importance", "plot_pooling_weights", "plot_skeleton_clip",
]
