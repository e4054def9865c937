"""Tests for vireid_lib.data.samplers: batch structure, epoch length, determinism, replicas."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vireid_lib.data.errors import DatasetError
from vireid_lib.data.records import INFRARED, VISIBLE, ImageRecord
from vireid_lib.data.samplers import CrossModalityIdentitySampler, TrackletSampler, official_batches
from vireid_lib.papers.mitml import VideoRecipe
from vireid_lib.papers import Recipe


def _labels(items_per_id: dict[int, int]) -> list[int]:
    """One label per item: identity ``pid`` repeated ``items_per_id[pid]`` times, interleaved.

    Interleaving (0, 1, 2, 0, 1, ...) makes sure the sampler does not rely on items of one
    identity being contiguous.
    """
    remaining = dict(items_per_id)
    out: list[int] = []
    while any(remaining.values()):
        for pid in sorted(remaining):
            if remaining[pid]:
                out.append(pid)
                remaining[pid] -= 1
    return out


# 10 identities with 7 visible and 3 infrared items each: 70 visible, 30 infrared items.
VIS = _labels({pid: 7 for pid in range(10)})
IR = _labels({pid: 3 for pid in range(10)})


def _batches(pairs: list[tuple[int, int]], batch_size: int) -> list[list[tuple[int, int]]]:
    assert len(pairs) % batch_size == 0
    return [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]


def test_every_batch_has_p_identities_k_times_and_paired_positions() -> None:
    p, k = 3, 4
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=p, num_per_modality=k, seed=0)
    assert sampler.batch_size == 12
    pairs = list(sampler)
    assert all(isinstance(v, int) and isinstance(i, int) for v, i in pairs)
    for batch in _batches(pairs, 12):
        vis_pids = [VIS[v] for v, _ in batch]
        ir_pids = [IR[i] for _, i in batch]
        # Position pairing: visible j and infrared j share the identity.
        assert vis_pids == ir_pids
        # Exactly P distinct identities, each K times, in contiguous blocks of K.
        assert sorted(Counter(vis_pids).values()) == [k] * p
        for block in range(p):
            assert len(set(vis_pids[block * k : (block + 1) * k])) == 1


def test_official_epoch_length() -> None:
    # N = max(70, 30) = 70, P*K = 2*4 = 8 -> int(70 / 8) + 1 = 8 + 1 = 9 batches = 72 pairs.
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_per_modality=4)
    assert len(sampler) == 72
    assert len(list(sampler)) == 72
    # N = 64 (an exact multiple of P*K = 8) still gets the official "+ 1": 9 batches.
    vis64 = _labels({pid: 8 for pid in range(8)})
    ir16 = _labels({pid: 2 for pid in range(8)})
    sampler = CrossModalityIdentitySampler(vis64, ir16, num_ids=2, num_per_modality=4)
    assert len(sampler) == 72
    # "official" means the same count with replace=False.
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_per_modality=4, replace=False)
    assert len(sampler) == 72 and len(list(sampler)) == 72


def test_integer_epoch_length() -> None:
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_per_modality=4, epoch_length=5)
    assert len(sampler) == 40
    assert len(list(sampler)) == 40


def test_same_seed_and_epoch_same_order_other_epoch_differs() -> None:
    a = CrossModalityIdentitySampler(VIS, IR, num_ids=3, num_per_modality=2, seed=7)
    b = CrossModalityIdentitySampler(VIS, IR, num_ids=3, num_per_modality=2, seed=7)
    epoch0 = list(a)
    assert list(b) == epoch0
    assert list(a) == epoch0  # iterating again without set_epoch repeats the epoch
    torch.manual_seed(123)  # global RNG state must not matter
    assert list(b) == epoch0
    a.set_epoch(1)
    epoch1 = list(a)
    assert epoch1 != epoch0
    b.set_epoch(1)
    assert list(b) == epoch1
    a.set_epoch(0)
    assert list(a) == epoch0
    other_seed = CrossModalityIdentitySampler(VIS, IR, num_ids=3, num_per_modality=2, seed=8)
    assert list(other_seed) != epoch0


@pytest.mark.parametrize("replace", [True, False])
def test_items_belong_to_their_identity(replace: bool) -> None:
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=4, num_per_modality=2, replace=replace)
    for v, i in sampler:
        assert 0 <= v < 70 and 0 <= i < 30
        assert VIS[v] == IR[i]


def test_replace_false_draws_distinct_items_within_an_identity() -> None:
    # Every identity has 7 visible items >= K = 4, so each identity's 4 visible items in a
    # batch must be distinct. Infrared has only 3 < K: all 3 appear, plus one repeat.
    k = 4
    sampler = CrossModalityIdentitySampler(
        VIS, IR, num_ids=3, num_per_modality=k, replace=False, epoch_length=30
    )
    for batch in _batches(list(sampler), 12):
        for block in range(3):
            vis_items = [v for v, _ in batch[block * k : (block + 1) * k]]
            ir_items = [i for _, i in batch[block * k : (block + 1) * k]]
            assert len(set(vis_items)) == k
            pid = VIS[vis_items[0]]
            assert set(ir_items) == {j for j, label in enumerate(IR) if label == pid}


def test_replace_true_does_repeat_items() -> None:
    # Contrast for the test above: with replacement, 4 draws from 7 items repeat with
    # probability 1 - 7*6*5*4/7**4 = 0.65 per draw, so over 90 draws some repeat.
    k = 4
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=3, num_per_modality=k, epoch_length=30)
    repeats = 0
    for batch in _batches(list(sampler), 12):
        for block in range(3):
            vis_items = [v for v, _ in batch[block * k : (block + 1) * k]]
            repeats += len(set(vis_items)) < k
    assert repeats > 0


def test_replace_false_uses_every_item_before_reusing() -> None:
    # 2 identities, P = 2, K = 2: every batch holds both identities. Identity 0 has 6
    # visible items, so its first 3 draws (6 items) must be a permutation of all 6.
    vis = _labels({0: 6, 1: 4})
    ir = _labels({0: 2, 1: 2})
    sampler = CrossModalityIdentitySampler(
        vis, ir, num_ids=2, num_per_modality=2, replace=False, epoch_length=3
    )
    used_by_zero = [v for v, _ in sampler if vis[v] == 0]
    assert sorted(used_by_zero) == [j for j, label in enumerate(vis) if label == 0]


def test_one_modality_identities_dropped_with_warning() -> None:
    vis = VIS + [99, 99, 98]
    ir = IR + [77]
    with pytest.warns(UserWarning, match=r"dropping 3 identities") as record:
        sampler = CrossModalityIdentitySampler(vis, ir, num_ids=4, num_per_modality=2)
    message = str(record[0].message)
    assert "98" in message and "99" in message and "77" in message
    for v, i in sampler:
        assert vis[v] in range(10) and ir[i] in range(10)


def test_no_warning_when_all_identities_paired() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrossModalityIdentitySampler(VIS, IR, num_ids=4, num_per_modality=2)


def test_too_few_identities_raises() -> None:
    vis = _labels({0: 3, 1: 3, 2: 3, 5: 3})
    ir = _labels({0: 3, 1: 3, 2: 3, 6: 3})
    with pytest.raises(DatasetError, match="num_ids"), pytest.warns(UserWarning):
        CrossModalityIdentitySampler(vis, ir, num_ids=4, num_per_modality=2)
    # Three paired identities are enough for num_ids=3.
    with pytest.warns(UserWarning):
        sampler = CrossModalityIdentitySampler(vis, ir, num_ids=3, num_per_modality=2)
    assert sampler.batch_size == 6


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_ids": 0}, "num_ids"),
        ({"num_per_modality": -1}, "num_per_modality"),
        ({"epoch_length": "auto"}, "epoch_length"),
        ({"epoch_length": 0}, "epoch_length"),
        ({"seed": -1}, "seed"),
        ({"num_replicas": 2}, "rank"),
        ({"num_replicas": 2, "rank": 2}, "rank"),
        ({"replace": "no"}, "replace"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, name: str) -> None:
    with pytest.raises(DatasetError, match=name):
        CrossModalityIdentitySampler(VIS, IR, **kwargs)


def test_empty_or_non_integer_labels_raise() -> None:
    with pytest.raises(DatasetError, match="visible_pids"):
        CrossModalityIdentitySampler([], IR)
    with pytest.raises(DatasetError, match="infrared_pids"):
        CrossModalityIdentitySampler(VIS, [0.5] * 30)


def test_two_replicas_split_the_single_process_batches() -> None:
    kwargs = dict(num_ids=2, num_per_modality=4, seed=3)
    single = _batches(list(CrossModalityIdentitySampler(VIS, IR, **kwargs)), 8)
    assert len(single) == 9  # int(70 / 8) + 1
    r0 = CrossModalityIdentitySampler(VIS, IR, num_replicas=2, rank=0, **kwargs)
    r1 = CrossModalityIdentitySampler(VIS, IR, num_replicas=2, rank=1, **kwargs)
    # 9 batches padded to 10: five each.
    assert len(r0) == len(r1) == 5 * 8
    b0 = _batches(list(r0), 8)
    b1 = _batches(list(r1), 8)
    assert b0 == [single[j] for j in (0, 2, 4, 6, 8)]
    assert b1 == [single[j] for j in (1, 3, 5, 7)] + [single[0]]  # padding repeats the start
    # Disjoint apart from the one padding batch, and together they cover the single list.
    assert b0 + b1[:4] == [single[j] for j in (0, 2, 4, 6, 8, 1, 3, 5, 7)]
    assert sorted(map(tuple, b0 + b1[:4])) == sorted(map(tuple, single))
    # set_epoch moves all replicas together.
    for s in (r0, r1):
        s.set_epoch(4)
    single_sampler = CrossModalityIdentitySampler(VIS, IR, **kwargs)
    single_sampler.set_epoch(4)
    single4 = _batches(list(single_sampler), 8)
    assert _batches(list(r1), 8)[:4] == [single4[j] for j in (1, 3, 5, 7)]


def test_replicas_without_padding_are_disjoint() -> None:
    kwargs = dict(num_ids=2, num_per_modality=4, epoch_length=6, seed=0)
    single = _batches(list(CrossModalityIdentitySampler(VIS, IR, **kwargs)), 8)
    parts = [
        _batches(list(CrossModalityIdentitySampler(VIS, IR, num_replicas=3, rank=r, **kwargs)), 8)
        for r in range(3)
    ]
    assert [len(p) for p in parts] == [2, 2, 2]
    assert parts[0] == [single[0], single[3]]
    assert parts[1] == [single[1], single[4]]
    assert parts[2] == [single[2], single[5]]


class _PairDataset(Dataset):
    """Returns the pids and indices of a (visible, infrared) pair, as a real VI-ReID dataset would."""

    def __init__(self, vis: list[int], ir: list[int]) -> None:
        self.vis, self.ir = vis, ir

    def __len__(self) -> int:
        return max(len(self.vis), len(self.ir))

    def __getitem__(self, pair: tuple[int, int]) -> dict[str, torch.Tensor]:
        v, i = pair
        return {
            "vis_pid": torch.tensor(self.vis[v]),
            "ir_pid": torch.tensor(self.ir[i]),
            "vis_index": torch.tensor(v),
            "ir_index": torch.tensor(i),
        }


@pytest.mark.parametrize("num_workers", [0, 2])
def test_works_inside_dataloader(num_workers: int) -> None:
    sampler = CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_per_modality=4, seed=0)
    loader = DataLoader(
        _PairDataset(VIS, IR), batch_size=sampler.batch_size, sampler=sampler, num_workers=num_workers
    )
    expected = _batches(list(sampler), 8)
    batches = list(loader)
    assert len(batches) == len(loader) == 9
    for batch, pairs in zip(batches, expected):
        assert batch["vis_pid"].shape == (8,)
        assert torch.equal(batch["vis_pid"], batch["ir_pid"])
        assert batch["vis_index"].tolist() == [v for v, _ in pairs]
        assert batch["ir_index"].tolist() == [i for _, i in pairs]


def test_tracklet_sampler_defaults() -> None:
    vis = _labels({pid: 5 for pid in range(12)})  # 60 visible tracklets
    ir = _labels({pid: 3 for pid in range(12)})
    sampler = TrackletSampler(vis, ir, seed=0)
    assert (sampler.num_ids, sampler.num_per_modality, sampler.batch_size) == (8, 2, 16)
    # N = 60, P*K = 16 -> int(60 / 16) + 1 = 3 + 1 = 4 batches = 64 tracklet pairs.
    assert len(sampler) == 64
    for batch in _batches(list(sampler), 16):
        pids = [vis[v] for v, _ in batch]
        assert pids == [ir[i] for _, i in batch]
        assert sorted(Counter(pids).values()) == [2] * 8


def test_from_records() -> None:
    vis = [ImageRecord(f"v{j}.jpg", pid, 1, VISIBLE) for j, pid in enumerate(VIS)]
    ir = [ImageRecord(f"i{j}.jpg", pid, 3, INFRARED) for j, pid in enumerate(IR)]
    sampler = CrossModalityIdentitySampler.from_records(vis, ir, num_ids=2, num_per_modality=4)
    assert list(sampler) == list(CrossModalityIdentitySampler(VIS, IR, num_ids=2, num_per_modality=4))


def test_reads_world_size_and_rank_from_initialised_process_group(monkeypatch) -> None:
    import vireid_lib.data.samplers as samplers

    # Simulate an initialised 2-process group on rank 1 without starting one.
    monkeypatch.setattr(samplers.dist, "is_available", lambda: True)
    monkeypatch.setattr(samplers.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(samplers.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(samplers.dist, "get_rank", lambda: 1)
    kwargs = dict(num_ids=2, num_per_modality=4, seed=3)
    auto = CrossModalityIdentitySampler(VIS, IR, **kwargs)
    assert (auto.num_replicas, auto.rank) == (2, 1)
    explicit = CrossModalityIdentitySampler(VIS, IR, num_replicas=2, rank=1, **kwargs)
    assert list(auto) == list(explicit)
    # Explicit arguments win over the process group.
    single = CrossModalityIdentitySampler(VIS, IR, num_replicas=1, rank=0, **kwargs)
    assert len(single) == 72


def test_the_video_papers_count_an_epoch_by_the_smaller_modality() -> None:
    """MITML's and STAR's utils.IdentitySampler: int(min(N_v, N_i) / (P K)) batches, no extra one; AGW's counts the
    larger modality plus one."""
    visible, infrared = [i // 3 for i in range(30)], [i // 2 for i in range(20)]
    assert CrossModalityIdentitySampler(visible, infrared, num_ids=2, num_per_modality=2, epoch_length="min").num_batches == 5
    assert CrossModalityIdentitySampler(visible, infrared, num_ids=2, num_per_modality=2).num_batches == 30 // 4 + 1
    with pytest.raises(DatasetError, match="epoch_length='max'"):
        CrossModalityIdentitySampler(visible, infrared, num_ids=2, num_per_modality=2, epoch_length="max")
    assert VideoRecipe().epoch_rule == "min" and Recipe().epoch_rule == "official"
    assert official_batches(5460, 4291, 16, "min") == 268  # HITSZ-VCM's training tracklets, 8 ids x 2
