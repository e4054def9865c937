"""Write the paper notebooks from their cell lists (run once after editing; outputs stay empty).

Keeping the cells here as plain text makes notebook changes reviewable as ordinary diffs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

IVREID = [
    ("md", """# IV-ReID strong baseline (and the AGW row) on SYSU-MM01 and RegDB

Reproduces seed 003, the cross-modality strong baseline of `linyq17/IV-REID` (one shared
ResNet-50, modality-specific identity heads with a mutual KL term, batch-hard triplet), and with
`method="agw"` the AGW baseline (two-stream ResNet-50, non-local blocks, GeM, WRT). Everything
below calls `vireid_lib`; the paper's settings are the defaults, `None` meaning "the paper's value".

Run it with papermill, e.g. `papermill notebooks/ivreid_baseline.ipynb out.ipynb -p dataset regdb -p data_root /data/RegDB`."""),
    ("params", """method = "ivreid"          # "ivreid" (seed 003) or "agw" (the AGW baseline row)
dataset = "sysu"           # "sysu" or "regdb"
data_root = ""             # empty: the bundled synthetic twin, generated on first use (NOT a reproduction)
trial = 1                  # RegDB trial 1..10: every trial is a separately trained model
epochs = None              # None: the paper's (IV-ReID 100, AGW 81)
lr = None                  # None: the paper's (IV-ReID Adam 1e-4, heads 1e-3; AGW SGD 0.1)
num_ids = None             # identities per batch; None: the paper's 8
num_per_modality = None    # images per identity and modality; None: the paper's 4
height = None              # None: the paper's (IV-ReID 384, AGW 288)
width = None               # None: the paper's (IV-ReID 128, AGW 144)
batches_per_epoch = None   # None: the official epoch length; a small number only for smoke runs
pretrained = True          # torchvision's ImageNet ResNet-50 (downloaded once)
weights_file = ""          # or a local ResNet-50 state dict
checkpoint = ""            # evaluate this checkpoint instead of training
device = "auto"            # "auto", "cpu", "cuda", "cuda:1", ...
amp = "off"                # "off", "bf16" or "fp16" (CUDA only)
seed = None                # None: the paper's (IV-ReID 2019)
workers = 2                # DataLoader workers
eval_every = 0             # evaluate during training every k epochs (0: only at the end)
eval_trials = 10           # SYSU-MM01 gallery trials to average (the papers use 10)
synthetic_ids = 40         # identities of the synthetic twin
out_dir = "runs"           # checkpoints and logs
results_dir = "results"    # the run's result record"""),
    ("code", """%matplotlib inline
from IPython.display import Markdown, display

from vireid_lib.experiments.image import prepare
from vireid_lib.viz import plot_activation_maps, plot_cmc, plot_ranked_list, plot_training, ranked_list_browser, show_samples

run = prepare(method=method, dataset=dataset, data_root=data_root, trial=trial, epochs=epochs, lr=lr, num_ids=num_ids,
              num_per_modality=num_per_modality, height=height, width=width, batches_per_epoch=batches_per_epoch,
              pretrained=pretrained, weights_file=weights_file, checkpoint=checkpoint, device=device, amp=amp, seed=seed,
              workers=workers, eval_every=eval_every, eval_trials=eval_trials, synthetic_ids=synthetic_ids, out_dir=out_dir)
if run.data_kind == "synthetic":
    display(Markdown("> **Synthetic data.** These numbers come from the generated twin of the dataset: they show that "
                     "every step runs, and say nothing about the paper. Set `data_root` to the real dataset to reproduce it."))
print(f"{run.paper} on {run.dataset} ({run.data_kind}), {run.params['num_classes']} training identities, device {run.train_config.device}")"""),
    ("md", """## Data
The splits the official code uses (see PROTOCOLS.md): training identities, and for every test setting the
query and gallery sizes. On SYSU-MM01 indoor search some query identities have no gallery image by design; the
official scoring skips their queries."""),
    ("code", "run.summary()"),
    ("code", """visible, infrared = run.reader.train() if run.dataset == "sysu" else run.reader.train(run.trial)
show_samples(visible[::max(1, len(visible) // 8)][:8] + infrared[::max(1, len(infrared) // 8)][:8], title="training images: visible (top), infrared (bottom)")"""),
    ("md", """## Training
The paper's recipe; a checkpoint is written after every epoch (`out_dir`), and rerunning the notebook resumes
an interrupted run. Look at the loss terms: identity, the metric term, and for IV-ReID the KL between the heads."""),
    ("code", """if not checkpoint:
    result = run.train()
    display(plot_training(result.history))
    print(f"trained {len(result.history)} epochs in {run.durations['train_s']} s; checkpoint {result.checkpoint}")"""),
    ("md", """## Evaluation
Every official protocol of the dataset, scored exactly as the official evaluation code does; mean and standard
deviation over trials. These are **last-epoch** numbers; the official scripts report the best epoch on the test
set, which the record keeps separately when `eval_every` is set."""),
    ("code", """evaluation = run.evaluate()
evaluation.summary.round(2)"""),
    ("md", "### Beside the paper's reported numbers"),
    ("code", "run.compare_with_paper()"),
    ("code", "plot_cmc(evaluation.cmc, title=f'{run.paper} on {run.dataset} ({run.data_kind})')"),
    ("md", """## Ranked lists
The ten nearest gallery images of a few queries (first test setting): true matches framed green, others red.
On SYSU-MM01, camera-2 images are hidden for camera-3 queries, as the scoring removes them."""),
    ("code", """queries, gallery, distances, removed = run.ranking_example()
for q in range(0, len(queries), max(1, len(queries) // 3))[:3]:
    display(plot_ranked_list(queries[q], gallery, distances[q], top=10, removed=None if removed is None else removed[q]))"""),
    ("code", "ranked_list_browser(queries, gallery, distances, top=10, removed=removed)"),
    ("md", """## Where the model looks
Mean activation of the last convolutional block on visible and infrared training images: a model that matches
across modalities should respond to the body, not to the background."""),
    ("code", """images, maps, titles = run.activation_examples()
plot_activation_maps(images, maps, titles)"""),
    ("md", """## Result record
One JSON record per run in `results/` (scores, CMC curves, resolved configuration, data kind, versions, commit).
Regenerate the README's tables with `python -m vireid_lib.results readme`."""),
    ("code", """record = run.record(results_dir)
print(record)"""),
]


CST = [
    ("md", """# CST on HITSZ-VCM: cross-modality spatial-temporal transformer

Seed 000, Feng et al., IEEE TMM 2024. **CST's code is not public** (its repository holds a README and a checkpoint
link), so `vireid_lib.models.cst` implements it from the paper:

* **CTTM** cuts the clip's ResNet-50 feature maps into 3-D tubes (frames x rows x cols), one token per tube, and
  relates all tubes with a transformer encoder;
* **MTFM** gives every frame a message token; message tokens attend to each other across frames and are fed back into
  each frame's own attention;
* the **DC loss** (variance, cross-modality invariance, covariance) joins cross-entropy and triplet.

From the paper: the modules, S = 6 frames, 288 x 144 inputs, the two-stream ResNet-50, CE + triplet, lr 3.5e-4.
**This workbook's choices** (the paper's values could not be checked against code): token width 512, tube (2, 3, 3),
depth 2 for both modules, 8 heads, the three-branch layout (CNN mean, CTTM, MTFM) with a concatenated test feature,
the DC weights (VICReg's 25:25:1 ratio as 1 : 1 : 0.04), Adam and MITML's schedule (CST says it builds on MITML).
The same notebook trains the MITML-style video baseline (`train_baseline=False` skips it).

`papermill notebooks/cst_vcm.ipynb out.ipynb -p lr 3.5e-4 -p data_root /data/HITSZ-VCM`"""),
    ("params", """data_root = ""             # empty: the bundled synthetic twin, generated on first use (NOT a reproduction)
seq_len = 6                # frames sampled per tracklet (paper: 6)
epochs = None              # None: the recipe's 200 (MITML's schedule: warm-up 10, x0.1 at 35, x0.01 at 80)
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
train_baseline = True      # also train the MITML-style video baseline for the comparison table
baseline_lr = None         # None: MITML's 0.1 (head) / 0.01 (backbone), SGD
arch = "resnet50"          # the paper's; "resnet18" only for quick experiments
optimizer = None           # None: the recipe's (CST Adam, baseline SGD)
backbone_lr_factor = None  # None: the recipe's
batches_per_epoch = None   # None: the official epoch length; a small number only for smoke runs
pretrained = True          # torchvision's ImageNet weights (downloaded once)
weights_file = ""          # or a local ResNet state dict
checkpoint = ""            # evaluate this CST checkpoint instead of training it
device = "auto"
amp = "off"                # "off", "bf16" or "fp16" (CUDA only)
seed = None
workers = 2
eval_every = 0
synthetic_ids = 24         # identities of the synthetic twin
out_dir = "runs"
results_dir = "results\""""),
    ("code", """%matplotlib inline
from IPython.display import Markdown, display

from vireid_lib.experiments.video import prepare
from vireid_lib.viz import (plot_clip_attention, plot_cmc, plot_message_attention, plot_ranked_list, plot_training,
                            plot_tracklet_lengths, ranked_list_browser, show_clips)"""),
    ("code", """common = dict(data_root=data_root, seq_len=seq_len, epochs=epochs, num_ids=num_ids, num_per_modality=num_per_modality,
              height=height, width=width, arch=arch, optimizer=optimizer, backbone_lr_factor=backbone_lr_factor,
              batches_per_epoch=batches_per_epoch, pretrained=pretrained, weights_file=weights_file, device=device,
              amp=amp, seed=seed, workers=workers, eval_every=eval_every, synthetic_ids=synthetic_ids, out_dir=out_dir)
run = prepare("cst", lr=lr, tube=tube, dim=dim, cttm_depth=cttm_depth, mtfm_depth=mtfm_depth, heads=heads,
              dc_weight=dc_weight, checkpoint=checkpoint, **common)
if run.data_kind == "synthetic":
    display(Markdown("> **Synthetic data.** These numbers come from the generated twin of HITSZ-VCM: they show that every "
                     "step runs, and say nothing about the paper. Set `data_root` to the real dataset to reproduce it."))
print(f"CST on HITSZ-VCM ({run.data_kind}), {run.params['num_classes']} training identities, device {run.train_config.device}")"""),
    ("md", """## Data
Tracklets per split and modality (tracklets under 12 frames are dropped, as MITML's loader does), the length
distribution, and a few clips of each modality."""),
    ("code", "run.summary()"),
    ("code", """tracklets = run.tracklets()
display(tracklets.groupby(["split", "modality"]).agg(tracklets=("pid", "size"), identities=("pid", "nunique"),
                                                      mean_frames=("frames", "mean")).round(1))
plot_tracklet_lengths(tracklets)"""),
    ("code", """visible, infrared = run.reader.train()
show_clips(visible[:2] + infrared[:2], frames=seq_len)"""),
    ("md", """## Training
CST first, then the video baseline with its own (MITML) recipe. Checkpoints are written every epoch under
`out_dir`; rerunning resumes. The loss terms: identity and triplet per branch, and the DC terms."""),
    ("code", """if not checkpoint:
    result = run.train()
    display(plot_training(result.history))
    print(f"CST: {len(result.history)} epochs in {run.durations['train_s']} s; checkpoint {result.checkpoint}")"""),
    ("code", """baseline = None
if train_baseline:
    baseline = prepare("baseline", lr=baseline_lr, **common)
    display(plot_training(baseline.train().history))
    print(f"baseline: {baseline.durations['train_s']} s")"""),
    ("md", """## Evaluation
Both directions of the official protocol (infrared queries are the `query_IDX` tracklets; a gallery tracklet of the
query's identity seen by the query's camera is removed). **Last-epoch** numbers."""),
    ("code", """evaluation = run.evaluate()
others = (baseline,) if baseline is not None else ()
for other in others:
    other.evaluate()
evaluation.summary.round(2)"""),
    ("md", "### Beside CST's table (CAJL, MITML, IBAN and CST as reported) and the baseline trained here"),
    ("code", "run.compare_with_paper(others)"),
    ("code", """curves = {(f"CST {p}", d): c for (p, d), c in evaluation.cmc.items()}
for other in others:
    curves.update({(f"baseline {p}", d): c for (p, d), c in other.evaluation.cmc.items()})
plot_cmc(curves, title=f"HITSZ-VCM ({run.data_kind})")"""),
    ("md", """## Ranked tracklet lists
The ten nearest gallery tracklets (first frame shown) of a few infrared queries: true matches framed green."""),
    ("code", """queries, gallery, distances, removed = run.ranking_example("ir2rgb")
for q in range(0, len(queries), max(1, len(queries) // 3))[:3]:
    display(plot_ranked_list(queries[q], gallery, distances[q], top=10, removed=removed[q]))"""),
    ("code", "ranked_list_browser(queries, gallery, distances, top=10, removed=removed)"),
    ("md", """## Where the transformer attends
**Tube attention rollout** (CTTM): the class token's attention rolled out through the encoder layers, each tube's
share spread over its frames and cells. **Message-token attention** (MTFM): which frames each frame's message reads
from, and how much the messages rely on every frame. **Frame attention**: each frame's message token over its cells."""),
    ("code", """for modality, record, clip, attention in run.attention_examples():
    name = f"{modality} id {record.pid} cam {record.camid}"
    display(plot_clip_attention(clip, attention.tube_rollout()[0], title=f"tube rollout, {name}"))
    display(plot_message_attention(attention.message, attention.frame_reliance()[0], title=name))
    display(plot_clip_attention(clip, attention.frame_maps()[0], title=f"message token over each frame, {name}"))"""),
    ("md", """## Result records
One JSON record per trained model in `results/`; `python -m vireid_lib.results readme` regenerates the README."""),
    ("code", """for finished in (run, *others):
    print(finished.record(results_dir))"""),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = new_notebook()
    for index, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"cell-{index:02d}"  # stable ids: regenerating an unchanged notebook changes nothing
        if kind == "params":
            cell.metadata["tags"] = ["parameters"]
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


if __name__ == "__main__":
    nbformat.write(build(IVREID), ROOT / "notebooks" / "ivreid_baseline.ipynb")
    nbformat.write(build(CST), ROOT / "notebooks" / "cst_vcm.ipynb")
