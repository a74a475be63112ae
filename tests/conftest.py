"""Shared fixtures: the real seeds, the real default model, one index built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

# Seed file -> the locality the report is about, checked by hand against the texts.
SEED_LOCALITIES = {
    "000_e9f0a6d5a56f891f": "莲都区",
    "001_758a5b4942a02065": "丽水市",
    "002_e8d0747b3dfad330": "路桥区",
    "003_44711a7aea527f8e": "丽水经开区",
    "004_c93a4296dfa4c8a6": "温州市",
}
TRADITIONAL_SEED = "001_758a5b4942a02065"


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def seed_copy(tmp_path_factory) -> Path:
    """A private copy of the seeds that tests may read but not change."""
    dest = tmp_path_factory.mktemp("seeds")
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, dest / f.name)
    return dest


@pytest.fixture(scope="session")
def embedder():
    from policyrag.embedding import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory, seed_copy, embedder) -> Path:
    """The default index of the seeds, built once; tests must not modify it."""
    from policyrag import index
    from policyrag.config import Settings
    from policyrag.documents import load_documents

    root = tmp_path_factory.mktemp("index") / "default"
    docs, errors = load_documents([seed_copy])
    assert not errors
    index.build(root, docs, embedder, Settings(), [str(seed_copy)])
    return root


@pytest.fixture(scope="session")
def engine(index_dir, embedder):
    from policyrag.engine import Engine

    eng = Engine(index_dir)
    eng._embedder = embedder  # share the loaded model across the session
    return eng


@pytest.fixture
def fresh_index(tmp_path, seed_copy, embedder) -> Path:
    """A writable index of the seeds for tests that change it."""
    src_root = tmp_path / "idx"
    from policyrag import index
    from policyrag.config import Settings
    from policyrag.documents import load_documents

    docs, _ = load_documents([seed_copy])
    index.build(src_root, docs, embedder, Settings(), [str(seed_copy)])
    return src_root
