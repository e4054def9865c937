# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # CST on HITSZ-VCM (and BUPTCampus): cross-modality spatial-temporal transformer
#
# Seed 000, Feng et al., IEEE TMM 2024, **as its authors built it**: `vireid_lib.papers.cst` is the network of
# `FYJ112233/CST` (`model_main.py`, `CST.py`), built from what its forward pass uses, for clips of S = 14 frames:
#
# * AGW's two-stream ResNet-50 with its non-local blocks, GeM (p = 3) per frame;
# * **CTTM**: the layer4 maps cut into tubes of 3 x 1 cells x 2 frames (54 tubes per frame pair, 7 pairs), embedded, a
#   learned position per tube, a class token per pair, one spatial transformer layer (128 heads of 48);
# * **MTFM**: a message token per pair from its class token; the messages attend to each other across the pairs, then
#   each pair attends over its tokens and its message; a QuickGELU MLP;
# * a temporal transformer over the pairs' class tokens: the clip feature, which gates every frame's GeM vector through
#   one SE per frame (`SENet_learning`), averaged, then a BNNeck.
#
# The code's quirks are the defaults, each with the flag that fixes it (the declaration lists them): 1-channel
# non-local blocks (`official_one_channel`), message attention with one head per channel (`message_heads`), a DC
# covariance divided by 8192^3 (`dc_covariance_fix`), a second visible view made from the first's normalised output
# (`fresh_second_view`). **The repository has no training script**: the losses (label-smoothed CE + triplet + the DC
# loss between visible and infrared, 25 / 25 / 1 inside it), Adam at 3.5e-4, 4 identities x 2 tracklets and MITML's
# schedule are inferred from `test.py`'s arguments and MITML's code, and are recipe fields.
#
# The same notebook trains **MITML** as `VCM-project233/MITML` runs it (`vireid_lib.papers.mitml`), the baseline CST's
# table compares with (`train_mitml=False` skips it). The authors' released weights evaluate here too:
# `-p checkpoint VCMCST_CTTM_MTFM_DC_2_t2v_rank1_best.t` (CST's), `-p method mitml -p checkpoint FILE` (MITML's).
#
# `papermill notebooks/cst_vcm.ipynb out.ipynb -p lr 3.5e-4 -p data_root /data/HITSZ-VCM` (`-p dataset bupt -p data_root
# /data/BUPTCampus`: the same on BUPTCampus, scored by its own unfiltered rule). Relative `out_dir` and
# `results_dir` are taken in the workbook's root, wherever the kernel runs.

# %% tags=["parameters"]
dataset = "vcm"            # "vcm" (HITSZ-VCM, the paper's) or "bupt" (BUPTCampus: no reported CST row)
method = "cst"             # "cst"; "mitml" evaluates MITML's own weights (with checkpoint) as the main run
seq_len = None             # None: CST's 14 (one SE gate per frame is built in); MITML always takes its 6
lr = 3.5e-4                # CST's learning rate (Adam), the README's
tube = None                # None: (2, 3, 1) = frames x map rows x map cols; must divide (seq_len, height/16, width/16)
heads = None               # None: 128 heads of dim_head 48 (spatial and temporal transformers)
dim_head = None            # None: 48
mlp_dim = None             # None: 2048 (their feed-forward width)
frame_heads = None         # None: 128 (each pair's attention over its tokens and message)
message_heads = None       # None: the code's one head per channel; e.g. 16 for the fix
official_one_channel = None  # None: the code's 1-channel non-local blocks; False gives them C/2 channels
fresh_second_view = None   # None: the code's second visible view from the first's normalised output; True: from the image
dc_weight = None           # None: 1 (the DC loss: 25 x invariance + 25 x variance + 1 x covariance inside)
dc_covariance_fix = None   # None: the code's covariance / (3 x 8192^3), practically 0; True: VICReg's / (N - 1) / D
center_weight = None       # None: 0 (loss.py's hetero-centre triplet, which test.py's 'id+tri' does not name)
train_mitml = True         # also train MITML (as its code runs it) for the comparison table
mitml_lr = None            # None: MITML's 0.1 (BNNeck, classifier) / 0.01 (everything else), SGD
mitml_confusion_epoch = None  # None: MITML's 60 (0-based epoch from which the confusion term trains the network)

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from vireid_lib.experiments import beside, parameters, prepare
from vireid_lib.papers import cst as cst_model
from vireid_lib.papers.mitml import official_size
from vireid_lib.viz import (plot_clip_attention, plot_cmc, plot_frame_gates, plot_message_attention, plot_training,
                            plot_tracklet_lengths, show_clips, table)

# %%
# Every notebook also takes the shared parameters (`device`, `amp`, `workers`, `checkpoint`, `epochs`, `arch`,
# `out_dir`, `results_dir`, ...), declared once in `vireid_lib.experiments.SHARED` and listed in
# `notebooks/README.md`: `-p device cuda` works on every notebook.
given, mitml_parameters = beside(parameters(local=("method", "train_mitml")), "mitml", keep=("dataset",))
run = prepare(method, **(given if method == "cst" else mitml_parameters))

# %%
if run.data_kind == "synthetic":
    display(Markdown(f"> **Synthetic data.** These numbers come from the generated twin of {run.dataset_name}: they "
                     "show that every step runs, and say nothing about the paper. Set `data_root` to the real dataset "
                     "to reproduce it."))
display(Markdown(f"**{run.paper}** on {run.dataset_name} ({run.data_kind}), {run.params['num_classes']} training identities, "
                 f"device {run.train_config.device}, {run.params['arch']}, S = {run.recipe.seq_len}.\n\n"
                 f"**As the official code:** {run.fidelity}\n\n**Reported checkpoints:** {run.describe_selection()}"))
if method == "cst":
    print(f"CST at the paper's size (ResNet-50, 288 x 144, S = 14, 500 identities): "
          f"{cst_model.official_size() / 1e6:.1f}M parameters; this run: {run.parameter_counts()['network'] / 1e6:.1f}M")
print(f"checkpoints, log and figures: {run.run_dir}")

# %% [markdown]
# ### Where this run follows the official code
# Every documented difference between the paper's code and the workbook: the code's defects are the defaults (they
# produced the reported numbers) and each switch holds the fix; the last column says which side this run is on.

# %%
table(run.deviations())

# %% [markdown]
# ## Data
# Tracklets per split and modality (tracklets under 12 frames are dropped, as the official loaders do), the length
# distribution, and a few clips of each modality.

# %%
run.summary()

# %%
tracklets = run.tracklets()
display(tracklets.groupby(["split", "modality"]).agg(tracklets=("pid", "size"), identities=("pid", "nunique"),
                                                      mean_frames=("frames", "mean")).round(1))
run.figure(plot_tracklet_lengths(tracklets), "tracklet_lengths")

# %%
visible, infrared = run.reader.train()
run.figure(show_clips(visible[:2] + infrared[:2], frames=run.recipe.seq_len), "clips")

# %% [markdown]
# ## Training
# CST first (its batch: two visible views and an infrared one of every tracklet, `[V, V_second, I]`), then MITML with
# its own recipe. Checkpoints are written every epoch under `out_dir`; rerunning resumes. The loss terms: identity,
# triplet, and the DC loss with its three terms (the covariance is practically 0 in the code's form).

# %%
result = run.train_or_load()

# %%
mitml = None
if train_mitml and method == "cst":
    mitml = prepare("mitml", **mitml_parameters)
    network, adversary = official_size()
    counts = mitml.parameter_counts()
    print(f"MITML at the paper's size (ResNet-50, 500 identities): {network / 1e6:.1f}M + {adversary / 1e6:.1f}M "
          f"(modality classifier); this run ({mitml.params['arch']}): {counts['network'] / 1e6:.1f}M + {counts['criterion'] / 1e6:.1f}M")
    display(mitml.figure(plot_training(mitml.train().history), "training"))
    print(f"MITML: {mitml.durations['train_s']} s")

# %% [markdown]
# ## Evaluation
# Both directions of the official protocol (infrared queries are the `query_IDX` tracklets; a gallery tracklet of the
# query's identity seen by the query's camera is removed), each scored with the checkpoint the paper's script
# reports for it: CST's `test.py` loads the best IR -> VIS rank-1 checkpoint and tests only that direction (so each
# direction has its own); MITML's `train.py` keeps four (rank-1 and mAP of each direction) and its `test.py` loads
# the IR -> VIS mAP one for both. These are chosen on the test set itself, as the papers did (`selection="last"`
# reports the last epoch instead); the tables below put the last epoch beside them.

# %%
evaluation = run.evaluate()
others = (mitml,) if mitml is not None else ()
for other in others:
    other.evaluate()
table(evaluation.readable(), caption=f"{run.paper} reports {run.describe_selection()}")

# %% [markdown]
# ### Beside CST's table (CAJL, MITML, IBAN and CST as reported) and MITML trained here

# %%
if run.params["score_untrained"]:
    display(table(run.learning_summary(), caption=f"{run.paper}: untrained vs trained vs chance (random features)"))
table(run.compare_with_paper(others))

# %% [markdown]
# The reported checkpoints beside the last epoch, and which epoch each direction's was chosen at, by what score.

# %%
for finished in (run, *others):
    display(table(finished.last_and_selected(), caption=finished.paper))

# %%
run.figure(plot_cmc(run.cmc_curves(others), title=f"{run.dataset_name} ({run.data_kind})"), "cmc")

# %% [markdown]
# ### The dataset's other test settings
# Where the dataset's official test scores more than the two cross-modality directions (BUPTCampus's `test.py`: visible
# to visible, infrared to infrared, and every tracklet against every other), those are scored here with each model's
# last-epoch weights; HITSZ-VCM has none.

# %%
run.show_other_settings(others)

# %% [markdown]
# ## Ranked tracklet lists
# The ten nearest gallery tracklets (first frame shown) of a few infrared queries: true matches framed green; the
# number under each is its distance to the query (lower is closer).

# %%
run.show_ranked_lists("ir2rgb")

# %% [markdown]
# ## Where CST attends
# **Tubes**: each frame pair's class token over its tubes in the spatial transformer, every tube's weight spread over
# its frames and cells. **Message tokens**: which frame pairs each pair's message reads from, and how much the messages
# rely on every pair. **SE gates**: how much of each frame the clip feature lets through on top of itself. The
# overlays show attention relative to the clip's mean (1 = spread evenly, a middle colour), on one scale per clip.

# %%
for modality, record, clip, attention in (run.attention_examples() if method == "cst" else []):
    name, tag = f"{modality} id {record.pid} cam {record.camid}", f"{modality}_{record.pid}"
    display(run.figure(plot_clip_attention(clip, attention.tube_maps()[0], title=f"tube attention, {name}"),
                       f"tubes_{tag}"))
    display(run.figure(plot_message_attention(attention.message_matrix()[0], attention.pair_reliance()[0], title=name),
                       f"messages_{tag}"))
    display(run.figure(plot_frame_gates(attention.gate_strength()[0], title=name), f"gates_{tag}"))

# %% [markdown]
# ## Result records
# One JSON record per model in `results/`; `python -m vireid_lib.results readme` regenerates the README.

# %%
run.finish(others)
