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
# # The papers side by side
#
# Every result record in `results/` (one per trained model; `python -m vireid_lib.reproduce` writes them all), read
# on one footing: the same readers, the same scorer, the same trials. Per dataset, protocol and direction, each
# paper's numbers are the **mean ± std over trials** (SYSU-MM01: the ten gallery draws; RegDB: the ten models, one per
# trial), at the **last epoch** and with the checkpoint the paper's own script keeps (its **official rule**, chosen on
# the test set itself as the papers did, so optimistic; the README's recipes table gives each rule), beside what the
# paper reports. Runs of different configurations are never pooled: each row names its settings ("paper settings", or
# what differs, e.g. fewer epochs) and how many runs and trials it holds. Then every paper's CMC curves overlaid, the
# spread of the trials, and what each was trained with. **Real** records come first; synthetic records (smoke runs on
# the generated twins) have their own section and are never a reproduction.

# %% tags=["parameters"]
results_dir = "results"    # the records to compare (relative: in the workbook root)
metric = "mAP"             # the metric of the spread plot: R1, mAP or mINP

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from vireid_lib.experiments.params import check_notebook_parameters
from vireid_lib.paths import resolve
from vireid_lib.results import compare
from vireid_lib.results.records import load_records
from vireid_lib.viz import plot_cmc, plot_trial_spread, table

check_notebook_parameters(globals())
compare.check_metric(metric)
records = load_records(resolve(results_dir))
kinds = {kind: compare.of_kind(records, kind) for kind in ("real", "custom", "synthetic")}
print(f"{len(records)} records in {resolve(results_dir)}: " + ", ".join(f"{len(v)} {k}" for k, v in kinds.items()))


# %%
def section(kind: str, heading: str) -> None:
    """The comparison table, CMC overlays, trial spread and configurations of one data kind."""
    display(Markdown(heading))
    if not kinds[kind]:
        display(Markdown(f"_No {kind} records yet._"))
        return
    display(table(compare.comparison(records, kind)))
    for dataset in dict.fromkeys(r["dataset"] for r in compare.per_trial(records, kind).to_dict("records")):
        display(plot_cmc(compare.cmc_curves(records, kind, dataset), title=f"{dataset} ({kind})"))
    display(plot_trial_spread(compare.trial_spread(records, kind), metric, title=f"{metric} per trial ({kind})"))
    display(table(compare.configurations(records, kind)))


# %% [markdown]
# ## Reproductions on the real datasets

# %%
section("real", "Real datasets with the published split sizes; the reported columns are the papers' own numbers.")

# %% [markdown]
# ## Custom data (a real layout, other sizes)

# %%
section("custom", "Datasets in a real layout whose sizes differ from the published ones: not a reproduction either.")

# %% [markdown]
# ## Synthetic smoke runs: NOT reproductions
# Numbers from the generated twins show that every step runs; beside a paper's reported number they mean nothing.

# %%
section("synthetic", "> **Synthetic data.** Smoke runs on the generated twins (tiny networks, a few steps).")
