"""Evaluator speed against the plain per-query implementation, on paper-sized inputs.

    python benchmarks/eval_bench.py [--trials 10] [--device cpu|cuda]

Sizes: SYSU-MM01 single-shot (3,803 queries x 301 gallery) and 10-shot (3,803 x 3,010), ten
trials each, and HITSZ-VCM (5,000 x 6,000). The features are synthetic but shaped like the
real splits (identities, cameras, several gallery items per identity), with enough noise that
true matches are spread over the ranking. In one run it times vireid's evaluator, the plain
per-query implementation of tests/eval/reference.py (a full stable sort per query, as the
official code does), and a full stable argsort of the same matrices; checks that evaluator
and reference agree to 1e-9; and prints the speed-ups.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.eval.reference import reference_evaluate  # noqa: E402
from vireid_lib.eval import evaluate, pairwise_distance  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the reference and numpy's argsort use one core)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cases = [
        ("SYSU single-shot 3803x301", "sysu", args.trials, dict(num_ids=96, num_q=3803, per_id_cam=1, cams=(1, 2, 4, 5)), 301),
        ("SYSU 10-shot 3803x3010", "sysu", args.trials, dict(num_ids=96, num_q=3803, per_id_cam=10, cams=(1, 2, 4, 5)), 3010),
        ("VCM 5000x6000", "vcm", 1, dict(num_ids=400, num_q=5000, per_id_cam=3, cams=(1, 2, 3, 4, 5)), 6000),
    ]
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    print(f"{'case':<28} {'trials':>6} {'R1':>5} {'mAP':>5} {'vireid s':>9} {'reference s':>12} {'argsort s':>10} {'vs reference':>13} {'vs argsort':>11} {'max |diff|':>11}")
    for name, rule, trials, spec, gallery_size in cases:
        ours = reference = argsort = 0.0
        worst = 0.0
        for _ in range(trials):
            distmat, q_pids, g_pids, q_cams, g_cams = problem(rng, rule=rule, gallery_size=gallery_size, **spec)
            on_device = torch.as_tensor(distmat, device=args.device)
            if args.device != "cpu":
                torch.cuda.synchronize()
            seconds, got = timed(lambda: evaluate(on_device, q_pids, g_pids, q_cams, g_cams, rule))
            ours += seconds
            seconds, expected = timed(lambda: reference_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, rule))
            reference += seconds
            seconds, _ = timed(lambda: np.argsort(distmat, axis=1, kind="stable"))
            argsort += seconds
            diffs = [np.abs(got["cmc"] - expected["cmc"]).max(), np.nanmax(np.abs(got["AP"] - expected["AP"])),
                     abs(got["mAP"] - expected["mAP"]), abs(got["mINP"] - expected["mINP"])]
            worst = max(worst, *diffs)
            if max(diffs) > 1e-9:
                raise SystemExit(f"{name}: evaluator and reference disagree by {max(diffs):.3g}")
        print(f"{name:<28} {trials:>6} {got['cmc'][0]:>5.2f} {got['mAP']:>5.2f} {ours:>9.3f} {reference:>12.3f} {argsort:>10.3f} "
              f"{reference / ours:>12.1f}x {argsort / ours:>10.2f}x {worst:>11.1e}")


if __name__ == "__main__":
    main()
