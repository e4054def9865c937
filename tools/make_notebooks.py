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


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = new_notebook()
    for kind, source in cells:
        if kind == "md":
            notebook.cells.append(new_markdown_cell(source))
        else:
            cell = new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


if __name__ == "__main__":
    nbformat.write(build(IVREID), ROOT / "notebooks" / "ivreid_baseline.ipynb")
