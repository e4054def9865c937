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
# # CST on HITSZ-VCM: cross-modality spatial-temporal transformer
#
# Seed 000, Feng et al., IEEE TMM 2024. **CST's code is not public** (its repository holds a README and a checkpoint
# link), so `vireid_lib.models.cst` implements it from the paper:
#
# * **CTTM** cuts the clip's ResNet-50 feature maps into 3-D tubes (frames x rows x cols), one token per tube, and
#   relates all tubes with a transformer encoder;
# * **MTFM** gives every frame a message token; message tokens attend to each other across frames and are fed back into
#   each frame's own attention;
# * the **DC loss** (variance, cross-modality invariance, covariance) joins cross-entropy and triplet.
#
# From the paper: the modules, S = 6 frames, 288 x 144 inputs, the two-stream ResNet-50, CE + triplet, lr 3.5e-4.
# **This workbook's choices** (the paper's values could not be checked against code): token width 512, tube (2, 3, 3),
# depth 2 for both modules, 8 heads, the three-branch layout (CNN mean, CTTM, MTFM) with a concatenated test feature
# (each branch L2-normalised first, so the wide CNN branch does not drown the two transformer branches),
# the DC weights (VICReg's 25:25:1 ratio as 1 : 1 : 0.04), Adam and MITML's schedule (CST says it builds on MITML).
# The same notebook trains **MITML** as `VCM-project233/MITML` runs it (`vireid_lib.models.mitml`: two layer4s, a
# two-layer LSTM gating each of the 6 frames, an adversarial modality classifier whose confusion term joins at epoch 60),
# the baseline CST's table compares with; `train_mitml=False` skips it.
#
# MTFM's message tokens: the paper says each frame's message token exchanges information with the other frames to
# model long-range temporal dependencies, not how the token starts. Here it starts **from its frame** (the mean of the
# frame's tokens, projected, plus a time embedding), so the first exchange already carries frame content: a token
# starting as a learned constant would tell the other frames nothing in the first layer.
#
# `papermill notebooks/cst_vcm.ipynb out.ipynb -p lr 3.5e-4 -p data_root /data/HITSZ-VCM`. Relative `out_dir` and
# `results_dir` are taken in the workbook's root, wherever the kernel runs.

# %% tags=["parameters"]
data_root = ""             # empty: the bundled synthetic twin, generated on first use (NOT a reproduction)
seq_len = 6                # frames sampled per tracklet (paper: 6)
epochs = None              # None: the recipe's 200 (MITML's schedule: warm-up 10, x0.1 at 35, x0.01 at 80)
scale_schedule = False     # other epochs than the paper's keep its warm-up and lr steps (a short run may never leave the warm-up); True scales them
lr = 3.5e-4                # CST's learning rate (Adam)
num_ids = 8                # identities per batch
num_per_modality = 2       # tracklets per identity and modality
height = 288
width = 144
tube = (2, 3, 3)           # tube size (frames, map rows, map cols); must divide (seq_len, height/16, width/16)
dim = 512                  # transformer token width
cttm_depth = 2             # CTTM encoder blocks
mtfm_depth = 2             # MTFM layers
heads = 8                  # attention heads
dc_weight = 1.0            # weight of the DC loss (0 turns it off)
train_mitml = True         # also train MITML (as its code runs it) for the comparison table
mitml_lr = None            # None: MITML's 0.1 (BNNeck, classifier) / 0.01 (everything else), SGD
mitml_confusion_epoch = None  # None: MITML's 60 (0-based epoch from which the confusion term trains the network)
arch = "resnet50"          # the paper's; "resnet18" only for quick experiments
optimizer = None           # None: the recipe's (CST Adam, MITML SGD)
backbone_lr_factor = None  # None: the recipe's
batches_per_epoch = None   # None: the official epoch length; a small number only for smoke runs
pretrained = True          # torchvision's ImageNet weights (downloaded once)
weights_file = ""          # or a local ResNet state dict
checkpoint = ""            # evaluate this CST checkpoint instead of training it
device = "auto"
amp = "off"                # "off", "bf16" or "fp16" (CUDA only)
channels_last = False      # image batches and weights in the channels-last layout (faster convolutions)
augment = "auto"           # "loader": per image in the loader; "device": whole uint8 batches on the GPU; "auto": device on CUDA
compile_model = False      # torch.compile the training steps
seed = None
workers = 2
eval_every = None          # None: each script's test schedule (every 10 epochs from the first); 0: none during training
selection = "official"     # "official": report the checkpoints the scripts keep (chosen on the test set, as the papers did); "last": the last epoch only
score_untrained = False    # also score the models before training (the floor training must lift)
synthetic_ids = 24         # identities of the synthetic twin
resume = True              # continue an interrupted run found in out_dir
out_dir = "runs"           # checkpoints, logs and figures
results_dir = "results"    # the runs' result records

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from vireid_lib.experiments.params import check_notebook_parameters
from vireid_lib.experiments.video import prepare
from vireid_lib.models.mitml import official_size
from vireid_lib.viz import (plot_clip_attention, plot_cmc, plot_message_attention, plot_ranked_list, plot_training,
                            plot_tracklet_lengths, ranked_list_browser, show_clips, table)

check_notebook_parameters(globals())  # a parameter this notebook does not take is an error, not a warning

# %%
common = dict(data_root=data_root, seq_len=seq_len, epochs=epochs, scale_schedule=scale_schedule, num_ids=num_ids,
              num_per_modality=num_per_modality, height=height, width=width, arch=arch, optimizer=optimizer,
              backbone_lr_factor=backbone_lr_factor, batches_per_epoch=batches_per_epoch, pretrained=pretrained,
              weights_file=weights_file, device=device, amp=amp, seed=seed, workers=workers, eval_every=eval_every,
              selection=selection, synthetic_ids=synthetic_ids, resume=resume, channels_last=channels_last,
              augment=augment, compile_model=compile_model, out_dir=out_dir)
run = prepare("cst", lr=lr, tube=tube, dim=dim, cttm_depth=cttm_depth, mtfm_depth=mtfm_depth, heads=heads,
              dc_weight=dc_weight, checkpoint=checkpoint, **common)
if run.data_kind == "synthetic":
    display(Markdown("> **Synthetic data.** These numbers come from the generated twin of HITSZ-VCM: they show that every "
                     "step runs, and say nothing about the paper. Set `data_root` to the real dataset to reproduce it."))
print(f"CST on HITSZ-VCM ({run.data_kind}), {run.params['num_classes']} training identities, device {run.train_config.device}")
display(Markdown(f"**Reported checkpoints (CST):** {run.describe_selection()}"))
print(f"checkpoints, log and figures: {run.run_dir}")

# %% [markdown]
# ## Data
# Tracklets per split and modality (tracklets under 12 frames are dropped, as MITML's loader does), the length
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
run.figure(show_clips(visible[:2] + infrared[:2], frames=seq_len), "clips")

# %% [markdown]
# ## Training
# CST first, then MITML with its own recipe. Checkpoints are written every epoch under
# `out_dir`; rerunning resumes. The loss terms: identity and triplet per branch, and the DC terms.

# %%
if score_untrained:
    display(table(run.score_untrained().readable(), caption="CST before training"))
if not checkpoint:
    result = run.train()
    display(run.figure(plot_training(result.history), "training"))
    print(f"CST: {len(result.history)} epochs in {run.durations['train_s']} s; checkpoint {result.checkpoint}")

# %%
mitml = None
if train_mitml:
    mitml = prepare("mitml", lr=mitml_lr, confusion_epoch=mitml_confusion_epoch, **common)
    network, adversary = official_size()
    counts = mitml.parameter_counts()
    print(f"MITML at the paper's size (ResNet-50, 500 identities): {network / 1e6:.1f}M + {adversary / 1e6:.1f}M "
          f"(modality classifier); this run ({arch}): {counts['network'] / 1e6:.1f}M + {counts['criterion'] / 1e6:.1f}M")
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
table(evaluation.readable(), caption=f"CST reports {run.describe_selection()}")

# %% [markdown]
# ### Beside CST's table (CAJL, MITML, IBAN and CST as reported) and MITML trained here

# %%
if score_untrained:
    display(table(run.learning_summary(), caption="CST: untrained vs trained vs chance (random features)"))
table(run.compare_with_paper(others))

# %% [markdown]
# The reported checkpoints beside the last epoch, and which epoch each direction's was chosen at, by what score.

# %%
for finished in (run, *others):
    display(table(finished.last_and_selected(), caption=finished.paper))

# %%
run.figure(plot_cmc(run.cmc_curves(others), title=f"HITSZ-VCM ({run.data_kind})"), "cmc")

# %% [markdown]
# ## Ranked tracklet lists
# The ten nearest gallery tracklets (first frame shown) of a few infrared queries: true matches framed green; the
# number under each is its distance to the query (lower is closer).

# %%
queries, gallery, distances, removed = run.ranking_example("ir2rgb")
for q in range(0, len(queries), max(1, len(queries) // 3))[:3]:
    display(run.figure(plot_ranked_list(queries[q], gallery, distances[q], top=10, removed=removed[q]), f"ranked_query{q}"))

# %%
ranked_list_browser(queries, gallery, distances, top=10, removed=removed)

# %% [markdown]
# ## Where the transformer attends
# **Tube attention rollout** (CTTM): the class token's attention rolled out through the encoder layers, each tube's
# share spread over its frames and cells. **Message-token attention** (MTFM): which frames each frame's message reads
# from, and how much the messages rely on every frame. **Frame attention**: each frame's message token over its cells.
# The overlays show attention relative to the clip's mean (1 = spread evenly, a middle colour), on one scale per clip.

# %%
for modality, record, clip, attention in run.attention_examples():
    name = f"{modality} id {record.pid} cam {record.camid}"
    tag = f"{modality}_{record.pid}"
    display(run.figure(plot_clip_attention(clip, attention.tube_rollout()[0], title=f"tube rollout, {name}"), f"rollout_{tag}"))
    display(run.figure(plot_message_attention(attention.message, attention.frame_reliance()[0], title=name), f"messages_{tag}"))
    display(run.figure(plot_clip_attention(clip, attention.frame_maps()[0], title=f"message token over each frame, {name}"),
                       f"frame_maps_{tag}"))

# %% [markdown]
# ## Result records
# One JSON record per trained model in `results/`; `python -m vireid_lib.results readme` regenerates the README.

# %%
for finished in (run, *others):
    print(f"{finished.paper}: result record {finished.record(results_dir)}, figures {finished.run_dir / 'figures'}")
