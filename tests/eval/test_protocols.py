"""Protocol runners on the synthetic twins, checked against the plain reference scoring."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.eval.reference import reference_evaluate
from vireid_lib.data import HITSZVCM, SYSUMM01, RegDB
from vireid_lib.eval import EvaluationError, k_reciprocal_rerank, pairwise_distance, run_regdb, run_sysu, run_vcm

DIM = 64


def noisy_identity_features(noise: float, seed: int = 0):
    """An 'extractor' whose features are an identity code plus noise: a model of known quality."""
    rng = np.random.default_rng(seed)
    codes = {}

    def extract(records):
        rows = []
        for r in records:
            if r.pid not in codes:
                codes[r.pid] = np.random.default_rng(r.pid + 1000).normal(size=DIM)
            rows.append(codes[r.pid] + noise * rng.normal(size=DIM))
        return np.stack(rows)

    return extract


class Counting:
    def __init__(self, extract):
        self.extract, self.calls = extract, []

    def __call__(self, records):
        self.calls.append(len(records))
        return self.extract(records)


def test_sysu_runner_extracts_once_and_scores_every_setting(synthetic_sysu: Path) -> None:
    reader = SYSUMM01(synthetic_sysu)
    extract = Counting(noisy_identity_features(1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_sysu(reader, extract, modes=("all", "indoor"), shots=(1, 10), trials=range(3))
        gallery_paths = {r.path for m in ("all", "indoor") for s in (1, 10) for t in range(3) for r in reader.gallery(m, t, s)}
    assert extract.calls == [len(reader.query()), len(gallery_paths)]
    assert len(result.per_trial) == 2 * 2 * 3
    assert list(result.summary["protocol"]) == ["all-search, single-shot", "all-search, multi-shot (10)",
                                                "indoor-search, single-shot", "indoor-search, multi-shot (10)"]
    assert (result.summary["trials"] == 3).all() and set(result.summary["direction"]) == {"ir2rgb"}
    assert result.cmc["all-search, single-shot", "ir2rgb"].shape == (20,)
    # single-shot galleries differ per trial, so the scores spread
    assert result.summary.loc[0, "mAP_std"] > 0


def test_sysu_runner_matches_the_reference_on_each_trial(synthetic_sysu: Path) -> None:
    reader = SYSUMM01(synthetic_sysu)
    extract = noisy_identity_features(2.0, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_sysu(reader, extract, modes=("indoor",), trials=[5])
    query, gallery = reader.query(), reader.gallery("indoor", 5)
    # the same features the runner saw: rebuild them with a fresh extractor of the same seed
    fresh = noisy_identity_features(2.0, seed=4)
    qf = fresh(query)
    pool = sorted({r.path: r for r in gallery}.values(), key=lambda r: str(r.path))
    pool_features = dict(zip([r.path for r in pool], fresh(pool)))
    gf = np.stack([pool_features[r.path] for r in gallery])
    expected = reference_evaluate(pairwise_distance(qf, gf).numpy(), [r.pid for r in query], [r.pid for r in gallery],
                                  [r.camid for r in query], [r.camid for r in gallery], "sysu")
    row = result.per_trial.iloc[0]
    assert row["mAP"] == pytest.approx(100 * expected["mAP"], abs=1e-9)
    assert row["R1"] == pytest.approx(100 * expected["cmc"][0], abs=1e-9)
    assert row["valid_queries"] == expected["num_valid_queries"] < len(query)  # indoor skips some


def test_perfect_features_give_100_everywhere(synthetic_sysu: Path, synthetic_regdb: Path, synthetic_vcm: Path) -> None:
    perfect = noisy_identity_features(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = [run_sysu(SYSUMM01(synthetic_sysu), perfect, trials=[0]).summary,
                  run_regdb(RegDB(synthetic_regdb), lambda trial: perfect, trials=[1]).summary,
                  run_vcm(HITSZVCM(synthetic_vcm), perfect).summary]
    for table in tables:
        assert (table[["R1", "R5", "R10", "R20", "mAP", "mINP"]] == 100.0).all().all()


def test_regdb_runner_asks_for_each_trials_model(synthetic_regdb: Path) -> None:
    asked = []

    def extract_for_trial(trial):
        asked.append(trial)
        return noisy_identity_features(1.0, seed=trial)

    result = run_regdb(RegDB(synthetic_regdb), extract_for_trial, trials=[2, 7])
    assert asked == [2, 7]
    assert list(result.per_trial["direction"]) == ["v2t", "t2v", "v2t", "t2v"]
    assert list(result.summary["direction"]) == ["v2t", "t2v"] and (result.summary["trials"] == 2).all()


def test_vcm_runner_scores_both_directions_from_one_extraction(synthetic_vcm: Path) -> None:
    reader = HITSZVCM(synthetic_vcm)
    extract = Counting(noisy_identity_features(1.8, seed=2))
    result = run_vcm(reader, extract)
    split = reader.split("ir2rgb")
    assert extract.calls == [len(split.query), len(split.gallery)]
    ir2rgb, rgb2ir = result.per_trial.iloc[0], result.per_trial.iloc[1]
    assert (ir2rgb["queries"], rgb2ir["queries"]) == (len(split.query), len(split.gallery))
    # rgb2ir is the same matrix transposed: rebuild it and score it with the reference
    fresh = noisy_identity_features(1.8, seed=2)
    qf, gf = fresh(split.query), fresh(split.gallery)
    expected = reference_evaluate(pairwise_distance(gf, qf).numpy(), [r.pid for r in split.gallery], [r.pid for r in split.query],
                                  [r.camid for r in split.gallery], [r.camid for r in split.query], "vcm")
    assert rgb2ir["mAP"] == pytest.approx(100 * expected["mAP"], abs=1e-9)


def test_reranking_is_marked_and_helps_on_clustered_features(synthetic_regdb: Path) -> None:
    reader = RegDB(synthetic_regdb)
    plain = run_regdb(reader, lambda t: noisy_identity_features(2.5, seed=9), trials=[1])
    reranked = run_regdb(reader, lambda t: noisy_identity_features(2.5, seed=9), trials=[1], rerank=True)
    assert not plain.summary["reranked"].any() and reranked.summary["reranked"].all()
    assert reranked.summary["mAP"].mean() > plain.summary["mAP"].mean()


def test_rerank_arguments_and_shape() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    distances = k_reciprocal_rerank(q, g, k1=4, k2=2)
    assert distances.shape == (5, 7) and np.isfinite(distances).all() and (distances >= 0).all()
    with pytest.raises(EvaluationError, match="k1=0"):
        k_reciprocal_rerank(q, g, k1=0)
    with pytest.raises(EvaluationError, match="lambda_value=2"):
        k_reciprocal_rerank(q, g, lambda_value=2)


def test_extractor_returning_the_wrong_shape(synthetic_vcm: Path) -> None:
    with pytest.raises(EvaluationError, match=r"extract returned features of shape \(3, 64\) for .* query tracklets"):
        run_vcm(HITSZVCM(synthetic_vcm), lambda records: np.zeros((3, DIM)))


def test_unknown_direction_lists_the_valid_ones(synthetic_vcm: Path, synthetic_regdb: Path) -> None:
    with pytest.raises(EvaluationError, match=r"direction='v2t' is not a HITSZ-VCM direction; use one of \('ir2rgb', 'rgb2ir'\)"):
        run_vcm(HITSZVCM(synthetic_vcm), noisy_identity_features(1.0), directions=["v2t"])
    with pytest.raises(EvaluationError, match="not a RegDB direction"):
        run_regdb(RegDB(synthetic_regdb), lambda t: noisy_identity_features(1.0), trials=[1], directions=["ir2rgb"])
