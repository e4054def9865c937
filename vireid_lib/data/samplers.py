"""Cross-modality identity samplers: P identities x K visible/infrared pairs per batch.

:class:`CrossModalityIdentitySampler` reproduces the ``IdentitySampler`` of AGW (Ye et al.,
TPAMI 2021), which CAJ and most later VI-ReID image methods reuse, and
:class:`TrackletSampler` the same sampler with the HITSZ-VCM settings used by MITML (Lin et
al., CVPR 2022) and CST.

The sampler yields ``(visible_index, infrared_index)`` tuples. A dataset whose
``__getitem__`` takes such a tuple returns one visible and one infrared item of the same
identity; build the DataLoader with ``batch_size=sampler.batch_size`` so that each batch is
exactly one sampled block of P identities x K pairs::

    sampler = CrossModalityIdentitySampler(vis_pids, ir_pids, num_ids=8, num_per_modality=4, seed=0)
    loader = DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...

Within a batch, positions ``i*K .. i*K + K - 1`` hold identity ``i`` and position ``j`` of the
visible half and position ``j`` of the infrared half always share the identity.

Determinism: the global batch list of an epoch is a pure function of ``(seed, epoch)`` (numpy
``SeedSequence([seed, epoch])``); nothing depends on global RNG state, the rank or the number
of DataLoader workers (the sampler runs in the main process).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Union

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from .errors import DatasetError

EpochLength = Union[str, int]
# How the official samplers count an epoch's batches of P x K items per modality: AGW's IdentitySampler (and the image
# papers' copies) int(max(N_v, N_i) / (P K)) + 1; MITML's (and STAR's) int(min(N_v, N_i) / (P K)).
EPOCH_RULES = ("official", "min")


def official_batches(num_visible: int, num_infrared: int, batch_size: int, rule: str = "official") -> int:
    """Batches in one epoch of the official sampler named by ``rule`` (:data:`EPOCH_RULES`)."""
    if rule == "min":
        return max(1, min(num_visible, num_infrared) // batch_size)
    if rule == "official":
        return max(num_visible, num_infrared) // batch_size + 1
    raise DatasetError(f"epoch_length={rule!r} is unknown; use one of {EPOCH_RULES} or a positive int number of batches.")

# How many identity labels to spell out in warnings before eliding the rest.
_SHOW_IDS = 10


def _as_labels(name: str, labels: Sequence[int]) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DatasetError(
            f"{name} must be a flat sequence of int labels, one per item; got shape {arr.shape}."
        )
    if arr.size == 0:
        raise DatasetError(f"{name} is empty; the sampler needs at least one item of each modality.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(
            f"{name} must hold integer identity labels, got dtype {arr.dtype}; relabel pids to ints first."
        )
    return arr.astype(np.int64, copy=False)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise DatasetError(f"{name}={value!r} is invalid: it must be a positive integer.")
    return int(value)


def _group(labels: np.ndarray, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR layout of item indices grouped by identity, in the order of ``pids``.

    Returns ``(items, starts, counts)``: the indices of identity ``pids[c]`` are
    ``items[starts[c] : starts[c] + counts[c]]``, in increasing index order.
    """
    keep = np.isin(labels, pids)
    idx = np.nonzero(keep)[0]
    cls = np.searchsorted(pids, labels[idx])  # pids is sorted (np.unique)
    order = np.argsort(cls, kind="stable")
    items = idx[order]
    counts = np.bincount(cls, minlength=len(pids))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return items, starts, counts


class CrossModalityIdentitySampler(Sampler):
    """Sample batches of P identities x K (visible, infrared) pairs.

    Args:
        visible_pids: identity label of every visible training item (index = position).
        infrared_pids: identity label of every infrared training item.
        num_ids: P, identities per batch (AGW: 8).
        num_per_modality: K, items per identity and modality per batch (AGW: 4).
        replace: ``True`` is the official AGW sampling: per batch P identities drawn without
            replacement, then K visible and K infrared items per identity drawn *with*
            replacement. ``False`` is the reid-strong-baseline style used by the IV-ReID strong
            baseline: each identity's items of a modality are dealt out from a shuffled pool
            without replacement, so the K items of one draw are distinct and every item is
            used once before any is reused (the pool is reshuffled when fewer than K remain;
            the remainder is dropped, as reid-strong-baseline drops incomplete chunks). An
            identity with fewer than K items of a modality contributes all of them plus
            random repeats up to K.
        seed: non-negative int; with the epoch it fully determines the batches.
        num_replicas, rank: distributed setting; ``None`` reads them from an initialised
            ``torch.distributed`` process group, else a single process.
        epoch_length: global number of batches per epoch (before padding for replicas), or
            ``"official"`` = ``int(N / (P*K)) + 1`` with ``N = max(len(visible_pids),
            len(infrared_pids))`` as in AGW's ``IdentitySampler``, or ``"min"`` =
            ``int(min(len(visible_pids), len(infrared_pids)) / (P*K))`` as in MITML's and
            STAR's (:func:`official_batches`). Both mean the same thing for ``replace=False``,
            so both modes see the same number of pairs per epoch. ``N`` counts all items
            passed in, including those of dropped identities, like the official code which
            counts the whole training list.

    Identities present in only one modality cannot form pairs; they are dropped with a warning
    and their items are never yielded.
    """

    def __init__(
        self,
        visible_pids: Sequence[int],
        infrared_pids: Sequence[int],
        num_ids: int = 8,
        num_per_modality: int = 4,
        replace: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        epoch_length: EpochLength = "official",
    ) -> None:
        vis = _as_labels("visible_pids", visible_pids)
        ir = _as_labels("infrared_pids", infrared_pids)
        self.num_ids = _check_positive_int("num_ids", num_ids)
        self.num_per_modality = _check_positive_int("num_per_modality", num_per_modality)
        if not isinstance(replace, bool):
            raise DatasetError(f"replace={replace!r} is invalid: use True or False.")
        self.replace = replace
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DatasetError(f"seed={seed!r} is invalid: it must be a non-negative integer.")
        self.seed = int(seed)

        vis_ids = np.unique(vis)
        ir_ids = np.unique(ir)
        self.pids = np.intersect1d(vis_ids, ir_ids)  # sorted
        vis_only = np.setdiff1d(vis_ids, ir_ids)
        ir_only = np.setdiff1d(ir_ids, vis_ids)
        if len(vis_only) or len(ir_only):
            warnings.warn(
                f"CrossModalityIdentitySampler: dropping {len(vis_only) + len(ir_only)} identities "
                f"that appear in only one modality and so cannot be paired: "
                f"{len(vis_only)} visible-only {_preview(vis_only)}, "
                f"{len(ir_only)} infrared-only {_preview(ir_only)}.",
                stacklevel=2,
            )
        if len(self.pids) < self.num_ids:
            raise DatasetError(
                f"only {len(self.pids)} identities have both visible and infrared items but "
                f"num_ids={self.num_ids} identities are needed per batch; lower num_ids to at "
                f"most {len(self.pids)}."
            )
        self._vis = _group(vis, self.pids)
        self._ir = _group(ir, self.pids)
        self.num_items = max(len(vis), len(ir))

        if isinstance(epoch_length, str):
            self.num_batches = official_batches(len(vis), len(ir), self.batch_size, epoch_length)
        else:
            self.num_batches = _check_positive_int("epoch_length", epoch_length)
        self.epoch_length = epoch_length

        self.num_replicas, self.rank = _resolve_replicas(num_replicas, rank)
        self.batches_per_replica = math.ceil(self.num_batches / self.num_replicas)
        self.epoch = 0

    @classmethod
    def from_records(cls, visible: Sequence, infrared: Sequence, **kwargs) -> "CrossModalityIdentitySampler":
        """Build from lists of records (anything with a ``pid`` attribute, e.g. ImageRecord)."""
        return cls([r.pid for r in visible], [r.pid for r in infrared], **kwargs)

    @property
    def batch_size(self) -> int:
        """P * K: pairs per batch; use it as the DataLoader's ``batch_size``."""
        return self.num_ids * self.num_per_modality

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next ``iter()`` yields (as DistributedSampler)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise DatasetError(f"epoch={epoch!r} is invalid: it must be a non-negative integer.")
        self.epoch = int(epoch)

    def global_batches(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All batches of an epoch across replicas, before padding.

        Returns ``(visible, infrared)`` int64 arrays of shape ``(num_batches, P, K)``: entry
        ``[b, i, k]`` is the k-th item of the i-th identity of batch b.
        """
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch)]))
        n_ids = len(self.pids)
        # P distinct identities per batch: the first P of a random permutation of all
        # identities, drawn for all batches at once (argsort of uniforms is a uniform permutation).
        ids = np.argsort(rng.random((self.num_batches, n_ids)), axis=1)[:, : self.num_ids]
        draw = self._draw_with_replacement if self.replace else self._draw_from_pools
        # Same identity array for both modalities: this is what pairs position j of the visible
        # half with position j of the infrared half.
        return draw(rng, ids, self._vis), draw(rng, ids, self._ir)

    def _draw_with_replacement(self, rng: np.random.Generator, ids: np.ndarray, group: tuple) -> np.ndarray:
        # AGW: np.random.choice(pos[pid], num_pos), i.e. K draws with replacement per identity.
        items, starts, counts = group
        u = rng.random(ids.shape + (self.num_per_modality,))
        offset = np.minimum((u * counts[ids][..., None]).astype(np.int64), counts[ids][..., None] - 1)
        return items[starts[ids][..., None] + offset]

    def _draw_from_pools(self, rng: np.random.Generator, ids: np.ndarray, group: tuple) -> np.ndarray:
        items, starts, counts = group
        k = self.num_per_modality
        pools: dict[int, list[int]] = {}
        out = np.empty(ids.shape + (k,), dtype=np.int64)
        for b in range(ids.shape[0]):
            for i in range(ids.shape[1]):
                c = int(ids[b, i])
                own = items[starts[c] : starts[c] + counts[c]]
                if counts[c] < k:
                    # Too few items to fill K distinct slots: use each once and top up with
                    # repeats (reid-strong-baseline draws these identities with replacement).
                    draw = np.concatenate((own, rng.choice(own, k - counts[c], replace=True)))
                    out[b, i] = rng.permutation(draw)
                    continue
                pool = pools.get(c)
                if pool is None or len(pool) < k:
                    pool = rng.permutation(own).tolist()
                    pools[c] = pool
                out[b, i] = pool[-k:]
                del pool[-k:]
        return out

    def _replica_batches(self) -> tuple[np.ndarray, np.ndarray]:
        vis, ir = self.global_batches(self.epoch)
        total = self.batches_per_replica * self.num_replicas
        if total > self.num_batches:
            # Pad by repeating from the start (as DistributedSampler does) so every replica gets
            # the same number of batches and no rank waits on a collective the others skip.
            reps = math.ceil(total / self.num_batches)
            vis = np.concatenate([vis] * reps)[:total]
            ir = np.concatenate([ir] * reps)[:total]
        return vis[self.rank :: self.num_replicas], ir[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        vis, ir = self._replica_batches()
        return iter(list(zip(vis.reshape(-1).tolist(), ir.reshape(-1).tolist())))

    def __len__(self) -> int:
        return self.batches_per_replica * self.batch_size


class TrackletSampler(CrossModalityIdentitySampler):
    """The video version for HITSZ-VCM tracklets: 8 identities x 2 visible + 2 infrared per batch.

    MITML (Lin et al., CVPR 2022) and CST reuse AGW's identity sampler on tracklet labels with
    ``batch_size=8`` and ``num_pos=2``; only the defaults differ from the image sampler. Pass
    tracklet-level pids (one per tracklet, e.g. ``[t.pid for t in tracklets]``).
    """

    def __init__(self, visible_pids: Sequence[int], infrared_pids: Sequence[int], num_per_modality: int = 2,
                 **kwargs: Any) -> None:
        super().__init__(visible_pids, infrared_pids, num_per_modality=num_per_modality, **kwargs)


def _preview(ids: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:_SHOW_IDS])
    more = f", ... (+{len(ids) - _SHOW_IDS} more)" if len(ids) > _SHOW_IDS else ""
    return f"[{shown}{more}]"


def _resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    num_replicas = _check_positive_int("num_replicas", num_replicas)
    if rank is None:
        if initialised:
            rank = dist.get_rank()
        elif num_replicas == 1:
            rank = 0
        else:
            raise DatasetError(
                f"num_replicas={num_replicas} but rank is None and torch.distributed is not "
                f"initialised; pass this process's rank explicitly."
            )
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
        raise DatasetError(f"rank={rank!r} is invalid: it must be an integer in [0, {num_replicas - 1}].")
    return num_replicas, int(rank)


__all__ = ["EPOCH_RULES", "CrossModalityIdentitySampler", "TrackletSampler", "official_batches"]
