"""The scoring core: CMC, mAP and mINP exactly as the official evaluation code computes them.

Five rules (PROTOCOLS.md; LLCM's from ``ZYK100/LLCM``, BUPTCampus's from ``dyhBUPT/BUPTCampus``):

``sysu``  (Cross-Modal-Re-ID-baseline ``eval_sysu``): for a query from camera 3 every gallery
          item from camera 2 is removed, whatever its identity; the CMC is computed on the
          ranked list with repeated identities collapsed to their first occurrence.
``regdb`` (``eval_regdb``): nothing is removed; standard CMC on the full list.
``vcm``   (MITML's Market-style ``evaluate``): gallery items with the query's pid AND camid
          are removed; standard CMC.
``bupt``  (BUPTCampus ``evaluation.py``): nothing is removed (it is given no camera); standard CMC, as
          ``regdb``.
``llcm``  (``eval_llcm``): gallery items with the query's pid AND camera number are removed (the
          numbers are shared by the two modalities, so a same-camera match of the other modality
          goes too); the CMC collapses identities to their first occurrence, as ``sysu``.

For all five, mAP and mINP use the full filtered ranked list (duplicates kept), queries with
no true match left are skipped, and the CMC is padded with its last value when the list holds
fewer than ``max_rank`` entries (the official code crashes or shortens it there).

Ties. The official code ranks with ``np.argsort``, which is not stable, so tied distances are
ordered arbitrarily. Here ties are broken by gallery position (a stable sort): an item that
comes earlier in the gallery list ranks first.

How it is fast. No query is ranked with an argsort. Every metric needs only the ranks of the
true matches (and, for SYSU-MM01's CMC, how many identities come before the first match).
For a block of queries at once: gallery columns are grouped by identity, so each query's
true-match distances are one fancy-index gather; removed items become +inf; each row's
*values* are sorted in place (numpy's SIMD sort, ~15x cheaper than a stable argsort); and a
vectorised binary search places the m match distances of every row in its sorted row, which
gives each match's rank. SYSU-MM01's identity-collapsed CMC compares the first match with
every identity's closest item (``np.minimum.reduceat`` over the grouped columns). Work is done
in float32 (float64 input is rounded, which keeps every order or turns it into a tie) and
accumulated in float64. Any row where a match shares its distance with another item, in
float32, is re-scored by a stable sort of the original values, so ties are always exact.
Blocks of queries keep memory bounded.

Whatever the route, the ranking is therefore the one a stable sort of the original values
gives (float16 and bfloat16 widened to float32, which is exact; integers as float64).

On the GPU. A large CUDA matrix (``DEVICE_MIN_ENTRIES``) is scored where it lies, by a second
implementation in torch (``backend="torch"`` forces it on any device, CPU included, which is
how the tests check it): per block of queries one stable ``torch.sort`` of each row gives the
ranked list outright, so ties follow gallery position exactly as above; removed items become
+inf and sink to the end; CMC, AP and INP come from the ranked identities with elementwise
ops and row reductions, the AP and INP arithmetic in float64. The CMC it gives is identical to
the numpy route's; AP can differ in its last bits only, because the two libraries add the
terms of a row in different orders (tests/eval/test_torch_scoring.py bounds it at 1e-12).
Smaller matrices, and any matrix that is not on a CUDA device, take the numpy route: a CUDA
matrix is then copied to the host first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

RULES = ("sysu", "regdb", "vcm", "llcm", "bupt")
# Rules that remove the query's own identity seen by its own camera number (HITSZ-VCM; LLCM, whose camera numbers
# are shared by the two modalities), and rules whose CMC counts identities, each at its first appearance.
SAME_CAMERA_REMOVED = ("vcm", "llcm")
IDENTITY_CMC = ("sysu", "llcm")
# Work on blocks of about this many distance entries: ~32 MB per float32 block array.
BLOCK_ENTRIES = 1 << 23
# Threads scoring blocks of queries at once (at most this many, and no more than the cores).
MAX_THREADS = 8
# Matrices with fewer entries than this are scored on one thread. Measured on 2 cores
# (2026-12-02, SYSU rule): the 2-thread pool costs 2.4x one thread at 100 x 301, 1.3x at
# 1,000 x 301, breaks even near 2,000 x 301 (0.6M entries, 1.08x faster) and wins from there
# (1.4x at single-shot 3,803 x 301, 1.7x at RegDB 2,060 x 2,060). A 1.3x slowdown once reported
# at single-shot and RegDB sizes did not reproduce here; more threads than cores do reproduce
# one (8 threads on 2 cores: 2.4x one thread's time at 3,803 x 301), hence cores by affinity.
THREAD_MIN_ENTRIES = 1 << 19
# Ranking runs in float32 (see above); larger distances would overflow to +inf there.
FLOAT32_LIMIT = float(np.finfo(np.float32).max)
# Which implementation scores: "numpy" (the vectorised CPU route), "torch" (on the matrix's own
# device) or "auto" (torch only for a CUDA matrix of at least DEVICE_MIN_ENTRIES entries).
BACKENDS = ("auto", "numpy", "torch")
# A CUDA matrix this large (2^22, about RegDB's 2,060 x 2,060) is scored on its GPU under "auto".
# Below it the numpy route takes a few ms on two cores (SYSU single-shot, 3,803 x 301: 14 ms a
# trial) after a host copy of a few MB, so the torch route's fixed costs (some twenty kernel
# launches per block, host synchronisations for the checks and the results) would eat most of
# what the GPU could save. Above it the numpy route costs 5-12 ns per entry on two cores (108 ms
# a SYSU 10-shot trial, 2.3 s at 20,000 x 20,000) and first needs the whole matrix on the host,
# while the GPU sorts it where it lies. Chosen from those CPU figures: the GPU side is not
# measured yet (no GPU was lent; benchmarks/eval_bench.py --device cuda measures it).
DEVICE_MIN_ENTRIES = 1 << 22
# The torch route works on blocks of about this many entries. A block peaks near 30 bytes per
# entry (the sort's values and int64 indices, then the ranked identities, a running hit count and
# its float64 precision terms), so about 0.5 GB at 2^24: small next to a GPU's memory, large enough that a
# 20,000 x 20,000 matrix needs only 24 blocks (each block costs its kernel launches once).
DEVICE_BLOCK_ENTRIES = 1 << 24


class EvaluationError(ValueError):
    """Bad input to the evaluator: the message names the argument and what to do."""


# Torch float types numpy cannot hold (it has no bfloat16) or ranks slowly (float16): widened to
# float32 before the copy to numpy. Exact: every half and bfloat16 value is a float32 value.
_WIDENED = (torch.float16, torch.bfloat16)


def _as_array(value: object) -> np.ndarray:
    """A numpy view or copy of ``value``; a torch tensor on any device, with or without grad.

    The scoring runs on the CPU whatever the tensor's device: the CPU path is the one checked
    against the reference, and the host copy of the matrix is cheap next to the ranking.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.dtype in _WIDENED:
            tensor = tensor.float()
        return tensor.cpu().numpy()
    return np.asarray(value)


def _labels(name: str, value: object, length: int, axis: str) -> np.ndarray:
    labels = _as_array(value)
    if labels.ndim != 1 or labels.shape[0] != length:
        raise EvaluationError(
            f"{name} has shape {tuple(labels.shape)} but the distance matrix has {length} {axis}; "
            f"pass one label per {axis[:-1] if axis.endswith('s') else axis}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise EvaluationError(f"{name} must hold integer labels, got dtype {labels.dtype}.")
    return labels.astype(np.int64)


def check_distances(distmat: object) -> np.ndarray:
    """The distance matrix as a 2-D float numpy array; empty, NaN or infinite input is an error."""
    d = _as_array(distmat)
    _check_shape(tuple(d.shape))
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    # min and max propagate NaN and expose infinities without a matrix-sized mask; the mask is
    # built only to name the culprit.
    def locate() -> tuple[int, int, int]:
        bad = ~np.isfinite(d)
        q, g = np.argwhere(bad)[0]
        return int(np.count_nonzero(bad)), int(q), int(g)

    _check_values(float(d.min()), float(d.max()), locate)
    return d


def _check_tensor(distmat: torch.Tensor) -> torch.Tensor:
    """:func:`check_distances` for the torch route: the same checks and messages, on the tensor's
    own device (two reductions and one host synchronisation, no copy of the matrix)."""
    d = distmat.detach()
    _check_shape(tuple(d.shape))
    if not d.is_floating_point():
        d = d.to(torch.float64)
    low, high = (float(v) for v in torch.stack(d.aminmax()).cpu())

    def locate() -> tuple[int, int, int]:
        bad = ~torch.isfinite(d)
        q, g = bad.nonzero()[0].tolist()
        return int(bad.sum()), q, g

    _check_values(low, high, locate)
    return d


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise EvaluationError(f"distmat must be a 2-D query x gallery matrix, got shape {shape}.")
    if shape[0] == 0 or shape[1] == 0:
        raise EvaluationError(f"distmat has shape {shape}: the query and the gallery must both be non-empty.")


def _check_values(low: float, high: float, locate) -> None:
    """Errors for NaN or infinite distances (``locate()`` gives their count and the first one's
    query and gallery index) and for distances beyond float32, given the matrix's min and max."""
    if not (np.isfinite(low) and np.isfinite(high)):
        count, q, g = locate()
        raise EvaluationError(
            f"distmat holds {count} NaN or infinite values (first at query {q}, "
            f"gallery {g}); the features or the model producing them are broken (check the training loss for NaN)."
        )
    # The torch route ranks in the input's own precision and could take these, but which route
    # runs must never decide whether a matrix is accepted.
    if max(abs(low), abs(high)) > FLOAT32_LIMIT:
        raise EvaluationError(
            f"distmat holds values up to {max(abs(low), abs(high)):.3g}, beyond float32's range, in "
            "which the evaluator ranks; divide the matrix by a constant (ranking is unchanged) and score it again."
        )


def evaluate(
    distmat: object,
    q_pids: Sequence[int] | np.ndarray | torch.Tensor,
    g_pids: Sequence[int] | np.ndarray | torch.Tensor,
    q_camids: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    g_camids: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    rule: str = "sysu",
    max_rank: int = 20,
    backend: str = "auto",
) -> dict:
    """Score a query x gallery distance matrix (smaller = closer) under one official rule.

    ``distmat`` may be a numpy array or a torch tensor (any device, any float type including
    float16 and bfloat16, with or without grad). Returns a dict with ``cmc`` (numpy float64,
    length ``max_rank``, fractions), ``mAP`` and ``mINP`` (fractions), ``num_valid_queries``,
    ``num_queries``, and per query ``AP``, ``INP`` (NaN where the query was skipped) and
    ``valid`` (bool).

    ``backend``: ``"auto"`` scores a CUDA tensor of at least ``DEVICE_MIN_ENTRIES`` entries on
    its GPU with torch and everything else on the CPU with numpy; ``"numpy"`` and ``"torch"``
    force one route (``"torch"`` runs on the tensor's device, the CPU for a numpy array). Both
    give the same CMC and the same AP and INP to the last bits (see the module docstring).
    """
    if backend not in BACKENDS:
        raise EvaluationError(f"backend={backend!r} is not known; use one of {BACKENDS} ('auto' picks for you).")
    if rule not in RULES:
        raise EvaluationError(f"rule={rule!r} is not known; use one of {RULES}.")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise EvaluationError(f"max_rank={max_rank!r} must be a positive integer (the papers use 20).")
    on_device = backend == "torch" or (backend == "auto" and _device_worthwhile(distmat))
    if on_device:
        tensor = distmat if isinstance(distmat, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(distmat))
        d = _check_tensor(tensor)
    else:
        d = check_distances(distmat)
    num_q, num_g = d.shape
    q_pid = _labels("q_pids", q_pids, num_q, "queries")
    g_pid = _labels("g_pids", g_pids, num_g, "gallery items")
    if rule in ("sysu", *SAME_CAMERA_REMOVED):
        if q_camids is None or g_camids is None:
            raise EvaluationError(f"rule={rule!r} removes gallery items by camera: pass q_camids and g_camids.")
        q_cam = _labels("q_camids", q_camids, num_q, "queries")
        g_cam = _labels("g_camids", g_camids, num_g, "gallery items")
    else:
        q_cam, g_cam = np.zeros(num_q, np.int64), np.zeros(num_g, np.int64)

    if on_device:
        first, ap, inp = _score_torch(d, q_pid, q_cam, g_pid, g_cam, rule, DEVICE_BLOCK_ENTRIES)
    else:
        first, ap, inp = _score_numpy(d, q_pid, q_cam, g_pid, g_cam, rule)

    valid = first >= 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise EvaluationError(
            f"no query has a true match in the gallery under rule={rule!r} ({num_q} queries, {num_g} gallery "
            "items): check that query and gallery labels come from the same split."
        )
    hits = np.bincount(first[valid], minlength=max_rank)[:max_rank].cumsum()
    return {
        "cmc": hits / num_valid,
        "mAP": float(ap[valid].mean()),
        "mINP": float(inp[valid].mean()),
        "num_valid_queries": num_valid,
        "num_queries": num_q,
        "AP": np.where(valid, ap, np.nan),
        "INP": np.where(valid, inp, np.nan),
        "valid": valid,
    }


def _device_worthwhile(distmat: object) -> bool:
    """``backend="auto"``: the torch route for a CUDA matrix of at least ``DEVICE_MIN_ENTRIES``
    entries. Only CUDA: the route needs float64 on the device (MPS has none), and a CPU tensor
    is scored faster by the numpy route, which also spreads its blocks over the cores."""
    return isinstance(distmat, torch.Tensor) and distmat.is_cuda and distmat.numel() >= DEVICE_MIN_ENTRIES


def _score_numpy(d: np.ndarray, q_pid: np.ndarray, q_cam: np.ndarray, g_pid: np.ndarray, g_cam: np.ndarray,
                 rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numpy route: per query the CMC rank (-1 if skipped), AP and INP, blocks on a thread pool."""
    num_q, num_g = d.shape
    gallery = _Gallery(g_pid, g_cam)
    first = np.empty(num_q, dtype=np.int64)
    ap = np.empty(num_q, dtype=np.float64)
    inp = np.empty(num_q, dtype=np.float64)
    threads = _thread_count(num_q, num_g)
    # Blocks bound the memory; several blocks per thread keep every core busy. numpy
    # releases the GIL in the sorts, gathers and reductions that make up a block.
    block = max(1, min(BLOCK_ENTRIES // num_g, -(-num_q // (2 * threads))))
    blocks = [slice(start, min(num_q, start + block)) for start in range(0, num_q, block)]

    def score(rows: slice) -> None:
        first[rows], ap[rows], inp[rows] = _score_block(d[rows], q_pid[rows], q_cam[rows], gallery, rule)

    if threads == 1 or len(blocks) == 1:
        for rows in blocks:
            score(rows)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(score, blocks))
    return first, ap, inp


def _cores() -> int:
    """The cores this process may run on: its affinity mask where the OS has one (a container
    or ``taskset`` limit), which ``os.cpu_count`` ignores."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _thread_count(num_q: int, num_g: int) -> int:
    """Threads for a ``num_q`` x ``num_g`` matrix: one below ``THREAD_MIN_ENTRIES``, where the
    pool's start-up and the smaller blocks cost more than the second core gains."""
    if num_q * num_g < THREAD_MIN_ENTRIES:
        return 1
    return max(1, min(_cores(), MAX_THREADS))


class _Gallery:
    """Gallery labels, with each identity's columns listed together."""

    def __init__(self, pids: np.ndarray, cams: np.ndarray) -> None:
        self.pids, self.cams = pids, cams
        self.order = np.argsort(pids, kind="stable")  # columns of one identity, side by side
        self.ids, self.starts, self.counts = np.unique(pids[self.order], return_index=True, return_counts=True)
        self.code = np.searchsorted(self.ids, pids)  # identity of each column as 0..P-1


def _score_block(
    d: np.ndarray, q_pid: np.ndarray, q_cam: np.ndarray, gallery: _Gallery, rule: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a block of queries: the CMC rank of each (-1 if skipped), AP and INP."""
    c, num_g = d.shape
    rows = np.arange(c)[:, None]
    work = d.astype(np.float32)  # a fresh copy: removed items are overwritten, rows sorted in place
    if rule == "sysu":  # official: cams 2 and 3 share a room
        work[np.ix_(q_cam == 3, gallery.cams == 2)] = np.inf

    # Each query's true matches: its identity's columns (padded to a rectangle, then masked).
    last = len(gallery.ids) - 1
    slot = np.minimum(np.searchsorted(gallery.ids, q_pid), last)
    count = np.where(gallery.ids[slot] == q_pid, gallery.counts[slot], 0)
    m_max = max(int(count.max()), 1)
    offset = np.arange(m_max)[None, :]
    present = offset < count[:, None]
    columns = gallery.order[np.where(present, gallery.starts[slot][:, None] + offset, 0)]
    if rule in SAME_CAMERA_REMOVED:  # the query's own identity seen by its own camera leaves the list
        same_cam = present & (gallery.cams[columns] == q_cam[:, None])
        work[np.broadcast_to(rows, columns.shape)[same_cam], columns[same_cam]] = np.inf
    matches = np.where(present, work[rows, columns], np.inf)
    matches.sort(axis=1)
    m = np.count_nonzero(np.isfinite(matches), axis=1)
    real = offset < m[:, None]

    work.sort(axis=1)
    rank = _lower_bound(work, matches)
    # Another item at exactly a match's distance sits right after it in the sorted row.
    after = np.minimum(rank + 1, num_g - 1)
    tied = (real & (rank + 1 < num_g) & (work[np.broadcast_to(rows, rank.shape), after] == matches)).any(axis=1)

    hit = (offset + 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(real, hit / (rank + 1), 0.0).sum(axis=1) / m
        inp = m / (rank[np.arange(c), np.maximum(m - 1, 0)] + 1.0)
    if rule in IDENTITY_CMC:
        first = _identities_ahead(d, rank[:, 0], matches[:, 0], q_pid, q_cam, gallery, rule)
    else:
        first = rank[:, 0].copy()
    first[m == 0] = -1
    for r in np.flatnonzero(tied & (m > 0)):
        first[r], ap[r], inp[r] = _score_with_ties(d[r], q_pid[r], q_cam[r], gallery, rule)
    return first, ap, inp


def _identities_ahead(d: np.ndarray, first_rank: np.ndarray, nearest: np.ndarray, q_pid: np.ndarray,
                      q_cam: np.ndarray, gallery: _Gallery, rule: str) -> np.ndarray:
    """The identity-collapsed CMC rank (SYSU-MM01's, LLCM's): distinct identities ahead of the first match.

    Only rows whose first match is not already first need a look; there, the identities of
    the kept items closer than it are counted. (An item tied with the first match has
    already sent its row to the exact path.)
    """
    count = np.zeros(len(first_rank), dtype=np.int64)
    rows = np.flatnonzero(first_rank > 0)
    if rows.size:
        ahead = d[rows].astype(np.float32) < nearest[rows, None]
        if rule == "sysu":
            ahead[np.ix_(q_cam[rows] == 3, gallery.cams == 2)] = False  # removed items never count
        else:  # the query's identity closer than its first kept match: only removed items can be
            ahead &= gallery.pids[None, :] != q_pid[rows, None]
        hit_rows, hit_columns = np.nonzero(ahead)
        seen = np.zeros((rows.size, len(gallery.ids)), dtype=bool)
        seen[hit_rows, gallery.code[hit_columns]] = True
        count[rows] = np.count_nonzero(seen, axis=1)
    return count


def _lower_bound(sorted_rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For every ``values[r, i]``: how many entries of ``sorted_rows[r]`` are strictly smaller.

    A binary search run on all (row, value) pairs at once: log2(G) vectorised steps over a
    flat view, which numpy gathers much faster than a 2-D fancy index.
    """
    n = sorted_rows.shape[1]
    flat = sorted_rows.reshape(-1)
    base = (np.arange(sorted_rows.shape[0]) * n)[:, None]
    lo = np.zeros(values.shape, dtype=np.int64)
    hi = np.full(values.shape, n, dtype=np.int64)
    for _ in range(int(np.ceil(np.log2(n + 1)))):
        mid = (lo + hi) >> 1
        below = np.take(flat, base + np.minimum(mid, n - 1)) < values
        lo = np.where(below & (lo < hi), mid + 1, lo)
        hi = np.where(below, hi, np.minimum(hi, mid))
    return lo


def removed_mask(rule: str, q_pid: np.ndarray, q_cam: np.ndarray, g_pid: np.ndarray, g_cam: np.ndarray) -> np.ndarray:
    """[query, gallery] True where ``rule`` takes the gallery item out of the query's ranked list (for pictures of
    ranked lists; the scoring itself applies the same rule inside its blocks)."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not a scoring rule; use one of {RULES}.")
    q_pid, q_cam = np.asarray(q_pid)[:, None], np.asarray(q_cam)[:, None]
    g_pid, g_cam = np.asarray(g_pid)[None, :], np.asarray(g_cam)[None, :]
    if rule == "sysu":  # official: a cam3 query loses every cam2 item (cams 2 and 3 share a room)
        return np.broadcast_to((q_cam == 3) & (g_cam == 2), (q_pid.shape[0], g_pid.shape[1])).copy()
    if rule in SAME_CAMERA_REMOVED:
        return (q_pid == g_pid) & (q_cam == g_cam)
    return np.zeros((q_pid.shape[0], g_pid.shape[1]), dtype=bool)


def _score_with_ties(d: np.ndarray, q_pid: int, q_cam: int, gallery: _Gallery, rule: str) -> tuple[int, float, float]:
    """One query scored by a stable sort of its original distances: exact order for ties."""
    pids, cams = gallery.pids, gallery.cams
    if rule == "sysu":
        keep = ~((q_cam == 3) & (cams == 2))
    elif rule in SAME_CAMERA_REMOVED:
        keep = ~((pids == q_pid) & (cams == q_cam))
    else:
        keep = np.ones(len(pids), dtype=bool)
    ranked = pids[keep][np.argsort(d[keep], kind="stable")]
    positions = np.flatnonzero(ranked == q_pid)
    ap = float(np.mean(np.arange(1, len(positions) + 1) / (positions + 1)))
    inp = len(positions) / (positions[-1] + 1.0)
    if rule in IDENTITY_CMC:
        first = len(np.unique(ranked[: positions[0]]))
    else:
        first = int(positions[0])
    return first, ap, inp


def _score_torch(d: torch.Tensor, q_pid: np.ndarray, q_cam: np.ndarray, g_pid: np.ndarray, g_cam: np.ndarray,
                 rule: str, block_entries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The torch route, on ``d``'s device: per query the CMC rank (-1 if skipped), AP and INP.

    Labels are small and arrive as numpy; identities become codes 0..P-1 (a query whose identity
    the gallery lacks gets -1, which no item has), so SYSU-MM01's identity count can index by them.
    """
    num_q, num_g = d.shape
    device = d.device
    ids = np.unique(g_pid)
    slot = np.minimum(np.searchsorted(ids, q_pid), len(ids) - 1)
    q_code = torch.as_tensor(np.where(ids[slot] == q_pid, slot, -1), device=device)
    g_code = torch.as_tensor(np.searchsorted(ids, g_pid), device=device)
    q_cam_t, g_cam_t = torch.as_tensor(q_cam, device=device), torch.as_tensor(g_cam, device=device)
    positions = torch.arange(num_g, device=device)
    first = torch.empty(num_q, dtype=torch.int64, device=device)
    ap = torch.empty(num_q, dtype=torch.float64, device=device)
    inp = torch.empty(num_q, dtype=torch.float64, device=device)
    block = max(1, block_entries // num_g)
    for start in range(0, num_q, block):
        rows = slice(start, min(num_q, start + block))
        first[rows], ap[rows], inp[rows] = _score_block_torch(
            d[rows], q_code[rows], q_cam_t[rows], g_code, g_cam_t, positions, len(ids), rule)
    return first.cpu().numpy(), ap.cpu().numpy(), inp.cpu().numpy()


def _score_block_torch(d: torch.Tensor, q_code: torch.Tensor, q_cam: torch.Tensor, g_code: torch.Tensor,
                       g_cam: torch.Tensor, positions: torch.Tensor, num_ids: int,
                       rule: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One block of queries by a stable sort of each row: the ranked list itself, ties in gallery order."""
    num_g = d.shape[1]
    # Half types widen exactly to float32 (as the numpy route does); float32 and float64 rank as given.
    work = d.to(torch.float32 if d.dtype in _WIDENED else d.dtype, copy=True)
    # -0.0 and 0.0 are one distance to numpy's comparison sort; CUDA's radix sort could order them
    # by their sign bit instead, so every zero is made +0.0.
    work.masked_fill_(work == 0, 0.0)
    if rule == "sysu":  # official: a cam3 query loses every cam2 item (cams 2 and 3 share a room)
        removed = (q_cam[:, None] == 3) & (g_cam[None, :] == 2)
    elif rule in SAME_CAMERA_REMOVED:  # the query's own identity seen by its own camera leaves the list
        removed = (q_code[:, None] == g_code[None, :]) & (q_cam[:, None] == g_cam[None, :])
    else:
        removed = None
    if removed is None:
        kept = torch.full((d.shape[0],), num_g, device=d.device)
    else:
        work.masked_fill_(removed, float("inf"))  # finite input: removed items sink below every kept one
        kept = num_g - removed.sum(dim=1)
        del removed
    order = torch.sort(work, dim=1, stable=True).indices
    del work
    ranked = g_code[order]  # identity of each ranked item
    del order
    match = (ranked == q_code[:, None]) & (positions < kept[:, None])
    m = match.sum(dim=1)
    # Precision at each true match: matches so far / 1-based rank, in float64 like the numpy route.
    precision = match.cumsum(dim=1).to(torch.float64).div_(positions + 1).masked_fill_(~match, 0.0)
    ap = precision.sum(dim=1) / m
    del precision
    last = torch.where(match, positions, -1).amax(dim=1)
    inp = m.to(torch.float64) / (last + 1).to(torch.float64)
    first = torch.where(match, positions, num_g).amin(dim=1)
    if rule in IDENTITY_CMC:
        # CMC over identities: how many identities show up (first occurrence) before the first
        # match. Removed items sit after every kept one, so they never come before it.
        seen_at = torch.full((d.shape[0], num_ids), num_g, dtype=torch.int64, device=d.device)
        seen_at.scatter_reduce_(1, ranked, positions.expand_as(ranked), reduce="amin")
        first = (seen_at < first[:, None]).sum(dim=1)
    first = torch.where(m > 0, first, -1)
    return first, ap, inp
