"""Shared fixtures: the real seeds, the real default model, one index built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# EmbeddingGemma re-orders English questions' passages where `make demo` has fetched it, and
# not on CI: tests see the same order on every machine, and those about it name an encoder.
os.environ.setdefault("POLICYRAG_ENGLISH_RERANK", "none")

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
def seed_documents(seeds_dir) -> list:
    """The seeds as read and cleaned for indexing, once per session."""
    from policyrag.ingest.documents import load_documents

    docs, errors = load_documents([seeds_dir])
    assert not errors
    return docs


@pytest.fixture(scope="session")
def seed_copy(tmp_path_factory) -> Path:
    """A private copy of the seeds that tests may read but not change."""
    dest = tmp_path_factory.mktemp("seeds")
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, dest / f.name)
    return dest


@pytest.fixture(scope="session")
def embedder():
    from policyrag.index.embedding import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory, seed_copy, embedder) -> Path:
    """The default index of the seeds, built once; tests must not modify it."""
    from policyrag.config import Settings
    from policyrag.index import lifecycle as index
    from policyrag.ingest.documents import load_documents

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
    from policyrag.config import Settings
    from policyrag.index import lifecycle as index
    from policyrag.ingest.documents import load_documents

    docs, _ = load_documents([seed_copy])
    index.build(src_root, docs, embedder, Settings(), [str(seed_copy)])
    return src_root


def report(marker: str, sentences: int = 8, detail: str = "") -> str:
    """A small report about `marker`, a phrase found nowhere else; `detail` lengthens each
    sentence."""
    body = [f"会议指出,要加快建设{marker},推动产业转型升级。"]
    body += [f"第{i}项工作要求各部门压实责任,确保{marker}建设取得实效{detail}。"
             for i in range(1, sentences)]
    return "关于推进重点项目建设的会议召开\n" + "\n".join(body) + "\n"


@pytest.fixture
def index_copy(tmp_path, index_dir) -> Path:
    """A writable copy of the session index of the seeds."""
    dest = tmp_path / "index"
    shutil.copytree(index_dir, dest)
    return dest


@pytest.fixture
def cli(monkeypatch, capsys, engine, index_dir):
    """Run `policyrag …` in-process on the session index; the model loaded once is reused."""
    from policyrag.cli import ask_cmd, main
    from policyrag.engine import Engine

    def make_engine(index=None, model=None, **kw):
        eng = Engine(index, model, **kw)
        eng._embedder = engine.embedder
        return eng

    monkeypatch.setattr(ask_cmd, "Engine", make_engine)

    def run(*argv: str) -> tuple[int, str, str]:
        rc = main([argv[0], "--index", str(index_dir), *argv[1:]])
        out, err = capsys.readouterr()
        return rc, out, err

    return run
