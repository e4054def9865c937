"""Evaluator speed against the plain per-query implementation, on paper-sized inputs.

    python benchmarks/eval_bench.py [--trials 10] [--device cpu|cuda] [--reference-queries 2000]

Sizes: SYSU-MM01 single-shot (3,803 queries x 301 gallery) and 10-shot (3,803 x 3,010), RegDB
(2,060 x 2,060), ten trials each, HITSZ-VCM (5,000 x 6,000) and a 20,000 x 20,000 problem. The
features are synthetic but shaped like the real splits (identities, cameras, several gallery
items per identity), with enough noise that true matches are spread over the ranking. In one
run it times vireid's evaluator, the plain per-query implementation of tests/eval/reference.py
(a full stable sort per query, as the official code does), and a full stable argsort of the
same matrices; checks that evaluator and reference agree to 1e-9; and prints the speed-ups.
At 20,000 x 20,000 the reference and the argsort run on the first ``--reference-queries``
queries only and their times are scaled by the query count (the full reference would take
about a minute); the agreement check covers those queries.

Then the torch route (``evaluate(..., backend="torch")``, what a large CUDA matrix gets) on the
same matrices, on ``--device`` (the CPU by default, with ``--threads`` torch threads), against
the numpy route on the host array: its time, and that both give the same CMC (exactly) and the
same AP, mAP and mINP (largest difference printed; 1e-12 is the bound the tests hold). On the
CPU the torch route is there to prove identical results, not speed: it pays a full stable sort
of every row (like the argsort column) plus a few elementwise passes over each block.

Then the SYSU-MM01 runner's scoring stage: ``run_sysu`` (query x gallery-pool distances once
per run, sliced per trial) against the per-trial path it replaced (one distance matrix per
mode, shot and trial), on a stand-in SYSU-MM01 of the real size (96 test identities, 3,803
infrared queries, ~20 visible images per identity and camera, 2,048-d float32 features looked
up by path, so extraction costs nothing), checking that both give identical tables.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.eval.reference import reference_evaluate  # noqa: E402
from vireid_lib.data.records import ImageRecord  # noqa: E402
from vireid_lib.eval import evaluate, pairwise_distance, run_sysu  # noqa: E402
from vireid_lib.eval.protocols import _run_sysu  # noqa: E402


# Feature noise chosen so that the scores look like published models' (SYSU-MM01 single-shot
# R1 about 0.6): how deep true matches sit in the ranking is what the evaluator's cost follows.
NOISE = 2.0


def problem(rng: np.random.Generator, num_ids: int, num_q: int, per_id_cam: int, cams: tuple, rule: str,
            gallery_size: int):
    """Query and gallery labels plus a noisy-feature distance matrix (gallery cut to size)."""
    centres = rng.normal(size=(num_ids, 128))
    q_pids = rng.integers(0, num_ids, num_q)
    q_cams = rng.choice([3, 6], num_q) if rule == "sysu" else rng.integers(1, 7, num_q)
    g_pids = np.repeat(np.arange(num_ids), len(cams) * per_id_cam)
    g_cams = np.tile(np.repeat(cams, per_id_cam), num_ids)
    g_pids, g_cams = g_pids[:gallery_size], g_cams[:gallery_size]
    query = centres[q_pids] + NOISE * rng.normal(size=(num_q, 128))
    gallery = centres[g_pids] + NOISE * rng.normal(size=(len(g_pids), 128))
    distmat = pairwise_distance(torch.as_tensor(query, dtype=torch.float32), torch.as_tensor(gallery, dtype=torch.float32))
    return distmat.numpy(), q_pids, g_pids, q_cams, g_cams


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


class StandInSYSU:
    """A SYSU-MM01 reader of the real test size with no files: galleries drawn the official way
    (``random.Random(trial)``, one or ``shot`` images per identity and visible camera)."""

    CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}

    def __init__(self, rng: np.random.Generator, num_ids: int = 96, per_folder: int = 20, num_query: int = 3803) -> None:
        present = rng.random((num_ids, 4)) < 0.78  # real single-shot all-search galleries hold 301 of 384 folders
        self.folders = {(pid, cam): [f"cam{cam}/{pid:04d}/{i:04d}.jpg" for i in range(per_folder)]
                        for pid in range(num_ids) for j, cam in enumerate((1, 2, 4, 5)) if present[pid, j]}
        q_pids, q_cams = rng.integers(0, num_ids, num_query), rng.choice([3, 6], num_query)
        self._query = [ImageRecord(Path(f"cam{c}/{p:04d}/{i:05d}.jpg"), int(p), int(c), 1)
                       for i, (p, c) in enumerate(zip(q_pids, q_cams))]
        self.num_ids = num_ids

    def query(self) -> list:
        return self._query

    def gallery(self, mode: str = "all", trial: int = 0, shot: int = 1) -> list:
        draw = random.Random(trial)
        gallery = []
        for pid in range(self.num_ids):
            for cam in self.CAMERAS[mode]:
                names = self.folders.get((pid, cam))
                if names:
                    chosen = [draw.choice(names)] if shot == 1 else draw.sample(names, shot)
                    gallery.extend(ImageRecord(Path(n), pid, cam, 0) for n in chosen)
        return gallery


def lookup_extractor(rng: np.random.Generator, dim: int = 2048):
    """Features as a trained model's would sit: an identity centre plus noise, fixed per path."""
    centres = rng.normal(size=(96, dim)).astype(np.float32)
    cache: dict = {}

    def extract(records):
        for r in records:
            if r.path not in cache:
                cache[r.path] = centres[r.pid] + 2.5 * rng.normal(size=dim).astype(np.float32)
        return np.stack([cache[r.path] for r in records])
    return extract


def bench_sysu_runner(rng: np.random.Generator, shots: tuple, trials: int) -> None:
    dataset, extract = StandInSYSU(rng), lookup_extractor(rng)
    settings = dict(modes=("all", "indoor"), shots=shots, trials=range(trials), metric="cosine", rerank=False, max_rank=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = list({r.path: r for m in ("all", "indoor") for s in shots for t in range(trials)
                     for r in dataset.gallery(m, t, s)}.values())
        run_sysu(dataset, extract, **settings)  # fills the feature cache: extraction is a lookup from here on
        per_trial_s, before = timed(lambda: _run_sysu(dataset, extract, **settings, distances_once=False))
        once_s, after = timed(lambda: run_sysu(dataset, extract, **settings))
        lookup_s, _ = timed(lambda: (extract(dataset.query()), extract(pool)))  # included in both times above
    identical = before.per_trial.equals(after.per_trial) and all(np.array_equal(after.cmc[k], c) for k, c in before.cmc.items())
    if not identical:
        raise SystemExit(f"run_sysu shots={shots}: distances-once and per-trial tables differ")
    settings_name = f"all+indoor, {'+'.join(f'{s}-shot' for s in shots)}, {trials} trials"
    print(f"{settings_name:<36} {len(before.per_trial):>5} {len(pool):>5} {per_trial_s:>12.2f} {once_s:>9.2f} "
          f"{per_trial_s / once_s:>7.1f}x {lookup_s:>9.2f} {'yes' if identical else 'NO':>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the reference and numpy's argsort use one core)")
    parser.add_argument("--reference-queries", type=int, default=2000,
                        help="queries the reference and the argsort run on at 20,000 x 20,000 (times scaled)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    # name, rule, trials, problem spec, gallery size, queries the reference runs on (None: all)
    cases = [
        ("SYSU single-shot 3803x301", "sysu", args.trials, dict(num_ids=96, num_q=3803, per_id_cam=1, cams=(1, 2, 4, 5)), 301, None),
        ("SYSU 10-shot 3803x3010", "sysu", args.trials, dict(num_ids=96, num_q=3803, per_id_cam=10, cams=(1, 2, 4, 5)), 3010, None),
        ("RegDB 2060x2060", "regdb", args.trials, dict(num_ids=206, num_q=2060, per_id_cam=10, cams=(1,)), 2060, None),
        ("VCM 5000x6000", "vcm", 1, dict(num_ids=400, num_q=5000, per_id_cam=3, cams=(1, 2, 3, 4, 5)), 6000, None),
        ("SYSU rule 20000x20000", "sysu", 1, dict(num_ids=1000, num_q=20000, per_id_cam=5, cams=(1, 2, 4, 5)), 20000,
         args.reference_queries),
    ]
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    routes = []  # the torch route against the numpy route, per case: printed after the main table
    print(f"{'case':<28} {'trials':>6} {'R1':>5} {'mAP':>5} {'vireid s':>9} {'reference s':>12} {'argsort s':>10} {'vs reference':>13} {'vs argsort':>11} {'max |diff|':>11}")
    for name, rule, trials, spec, gallery_size, subset in cases:
        ours = reference = argsort = 0.0
        worst = 0.0
        numpy_s = torch_s = 0.0
        route_diff, same_cmc = 0.0, True
        for _ in range(trials):
            distmat, q_pids, g_pids, q_cams, g_cams = problem(rng, rule=rule, gallery_size=gallery_size, **spec)
            on_device = torch.as_tensor(distmat, device=args.device)
            if args.device != "cpu":
                torch.cuda.synchronize()
            seconds, got = timed(lambda: evaluate(on_device, q_pids, g_pids, q_cams, g_cams, rule))
            ours += seconds
            n = len(q_pids) if subset is None else min(subset, len(q_pids))
            scale = len(q_pids) / n  # the reference's cost is per query
            part = (distmat[:n], q_pids[:n], g_pids, q_cams[:n], g_cams)
            seconds, expected = timed(lambda: reference_evaluate(*part, rule))
            reference += seconds * scale
            seconds, _ = timed(lambda: np.argsort(distmat[:n], axis=1, kind="stable"))
            argsort += seconds * scale
            checked = got if n == len(q_pids) else evaluate(*part, rule)  # the same queries as the reference
            diffs = [np.abs(checked["cmc"] - expected["cmc"]).max(), np.nanmax(np.abs(got["AP"][:n] - expected["AP"])),
                     abs(checked["mAP"] - expected["mAP"]), abs(checked["mINP"] - expected["mINP"])]
            worst = max(worst, *diffs)
            if max(diffs) > 1e-9:
                raise SystemExit(f"{name}: evaluator and reference disagree by {max(diffs):.3g}")
            labels = (q_pids, g_pids, q_cams, g_cams)
            seconds, by_numpy = timed(lambda: evaluate(distmat, *labels, rule, backend="numpy"))
            numpy_s += seconds
            seconds, by_torch = timed(lambda: evaluate(on_device, *labels, rule, backend="torch"))
            torch_s += seconds
            same_cmc &= bool(np.array_equal(by_torch["cmc"], by_numpy["cmc"]))
            route_diff = max(route_diff, np.nanmax(np.abs(by_torch["AP"] - by_numpy["AP"])),
                             np.nanmax(np.abs(by_torch["INP"] - by_numpy["INP"])),
                             abs(by_torch["mAP"] - by_numpy["mAP"]), abs(by_torch["mINP"] - by_numpy["mINP"]))
            if not same_cmc or route_diff > 1e-12:
                raise SystemExit(f"{name}: torch and numpy routes differ (CMC identical: {same_cmc}, "
                                 f"largest AP/INP difference {route_diff:.3g})")
        routes.append((name, trials, numpy_s, torch_s, same_cmc, route_diff))
        note = "" if subset is None else f"  (reference and argsort: {n} queries, x{scale:g})"
        print(f"{name:<28} {trials:>6} {got['cmc'][0]:>5.2f} {got['mAP']:>5.2f} {ours:>9.3f} {reference:>12.3f} {argsort:>10.3f} "
              f"{reference / ours:>12.1f}x {argsort / ours:>10.2f}x {worst:>11.1e}{note}")

    print()
    print(f"torch route (backend='torch') on {args.device} vs the numpy route, same matrices")
    print(f"{'case':<28} {'trials':>6} {'numpy s':>8} {'torch s':>8} {'torch/numpy':>12} {'same CMC':>9} {'max |diff|':>11}")
    for name, trials, numpy_s, torch_s, same_cmc, route_diff in routes:
        print(f"{name:<28} {trials:>6} {numpy_s:>8.3f} {torch_s:>8.3f} {torch_s / numpy_s:>11.1f}x "
              f"{'yes' if same_cmc else 'NO':>9} {route_diff:>11.1e}")

    print()
    print("run_sysu scoring stage: query x gallery distances once per run (sliced per trial) vs once per trial")
    print(f"{'settings':<36} {'rows':>5} {'pool':>5} {'per-trial s':>12} {'once s':>9} {'ratio':>8} {'lookup s':>9} {'identical':>10}")
    for shots in ((1,), (1, 10)):
        bench_sysu_runner(np.random.default_rng(1), shots, args.trials)


if __name__ == "__main__":
    main()
