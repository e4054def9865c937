"""Session fixtures: synthetic datasets are generated once and shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from vireid_lib.data.synthetic import SyntheticConfig, write_regdb, write_sysu, write_vcm

SMALL = SyntheticConfig(ids=16, seed=3)


@pytest.fixture(scope="session")
def synthetic_sysu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sysu")
    write_sysu(root, SMALL)
    return root


@pytest.fixture(scope="session")
def synthetic_regdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regdb")
    write_regdb(root, SyntheticConfig(ids=8, seed=3))
    return root


@pytest.fixture(scope="session")
def synthetic_vcm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vcm")
    write_vcm(root, SyntheticConfig(ids=10, seed=3))
    return root

