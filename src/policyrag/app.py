"""The web UI: ask questions, compare localities, read the cited passages, manage the library.

`build_app(engine)` returns the Gradio Blocks; `serve(engine, host, port)` launches it (the
`policyrag serve` command). Everything goes through the one shared `Engine`, which reopens the
index when a newer generation was committed, so an upload is searchable at once.

Besides the page, Gradio's API (`gradio_client`) exposes two endpoints that return plain,
JSON-able dicts: `/search` (ranked hits) and `/ask` (the cited answer). Errors a user can fix
come back as `{"error": "..."}` there, and as a friendly message on the page, never a traceback.
"""

from __future__ import annotations

import os

# Gradio would otherwise phone home (version check, analytics) from launch().
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import atexit  # noqa: E402
import html  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from policyrag.answer import generate  # noqa: E402
from policyrag.display import quoted_in_chinese, relative, scrub  # noqa: E402
from policyrag.engine import Engine  # noqa: E402
from policyrag.index import lifecycle as idx  # noqa: E402
from policyrag.index.embedding import EmbedderError  # noqa: E402
from policyrag.index.lifecycle import IndexError_  # noqa: E402
from policyrag.index.store import IndexLocked  # noqa: E402
from policyrag.ingest.readers import READERS, ReadError  # noqa: E402
from policyrag.search.retrieval import Filters, Hit, QueryError  # noqa: E402
from policyrag.uploads import Upload, add_uploads, forget  # noqa: E402

log = logging.getLogger(__name__)

EXTRACTIVE, ABSTRACTIVE = "extractive", "abstractive"
UPLOAD_SUFFIXES = sorted(READERS)  # every format `policyrag index add` reads
DEFAULT_K = 5
LOCALITIES_PER_PAGE = 8  # a comparison's localities shown at once; the rest a click away
MAX_K = 20
READ_CONCURRENCY = 4  # searches/answers at once; writes (upload, remove) run one at a time
EXAMPLES = [
    "各地区分别把哪些工作作为重点？",
    "How does Luqiao plan to attract private investment?",
    "各地如何推進共同富裕？",
    "招商引资有哪些举措？",
]
_MARKERS = re.compile(r"\s*\[\d{1,3}\]")
USER_ERRORS = (QueryError, IndexError_, ReadError, EmbedderError, IndexLocked,
               generate.GenerationUnavailable, FileNotFoundError)

# System font stacks only (no GoogleFont: this page must work offline); CJK faces first among
# the fallbacks so Chinese never renders as boxes where a CJK font is installed.
FONT = ["ui-sans-serif", "system-ui", "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC",
        "Microsoft YaHei", "Source Han Sans SC", "DejaVu Sans", "sans-serif"]
FONT_MONO = ["ui-monospace", "DejaVu Sans Mono", "Liberation Mono", "monospace"]

CSS = """
.pr-header h1 { margin-bottom: 0.1em; }
.pr-stats { color: var(--body-text-color-subdued); font-size: 0.92em; }
.pr-msg { padding: 10px 14px; border-radius: 8px; margin: 4px 0; font-size: 0.95em;
  border: 1px solid var(--border-color-primary); background: var(--block-background-fill); }
.pr-msg.pr-warn { border-color: #f0b429; background: #fffbea; color: #5f370e; }
.pr-msg.pr-ok { border-color: #3ebd93; background: #effcf6; color: #014d40; }
.pr-msg.pr-info { border-color: #7da7d9; background: #f0f6ff; color: #1f3a5f; }
.pr-answer-head { display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline;
  margin: 6px 0 10px; }
.pr-answer-head .pr-q { font-weight: 600; font-size: 1.05em; }
.pr-pill { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 0.8em;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary);
  color: var(--body-text-color-subdued); }
.pr-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
  gap: 14px; }
.pr-card { border: 1px solid var(--border-color-primary); border-radius: 12px;
  background: var(--block-background-fill); padding: 12px 14px;
  box-shadow: 0 1px 2px rgba(0,0,0,0.04); }
.pr-card h3 { margin: 0 0 2px; font-size: 1.12em; color: var(--color-accent); }
.pr-card .pr-docs { font-size: 0.82em; color: var(--body-text-color-subdued);
  margin-bottom: 6px; }
.pr-card ol { margin: 0; padding-left: 1.3em; }
.pr-card li { margin: 7px 0; line-height: 1.6; }
.pr-empty { color: var(--body-text-color-subdued); font-style: italic; }
.pr-cites { display: inline; }
details.pr-cite { display: inline-block; vertical-align: super; margin-left: 2px; }
details.pr-cite > summary { display: inline-block; list-style: none; cursor: pointer;
  font-size: 0.78em; font-weight: 600; padding: 0 6px; border-radius: 6px;
  color: var(--color-accent); background: var(--color-accent-soft); line-height: 1.5; }
details.pr-cite > summary:hover { outline: 1px solid var(--color-accent); }
details.pr-cite > summary::-webkit-details-marker { display: none; }
details.pr-cite[open] { display: block; vertical-align: baseline; margin: 6px 0 8px; }
.pr-source { border-left: 3px solid var(--color-accent); padding: 6px 10px; margin-top: 4px;
  background: var(--background-fill-secondary); border-radius: 0 8px 8px 0; font-size: 0.92em; }
.pr-source .pr-src-meta { font-size: 0.85em; color: var(--body-text-color-subdued);
  margin-bottom: 4px; overflow-wrap: anywhere; }
.pr-source .pr-src-meta b { color: var(--body-text-color); }
.pr-source p { margin: 0; line-height: 1.7; white-space: pre-wrap; }
mark { background: #fde68a; color: #1a1a1a; padding: 0 1px; border-radius: 2px; }
.pr-hits { list-style: none; padding: 0; margin: 0; }
.pr-hit { border-bottom: 1px solid var(--border-color-primary); padding: 8px 2px; }
.pr-hit:last-child { border-bottom: none; }
.pr-hit-head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap;
  font-size: 0.88em; }
.pr-rank { font-weight: 700; color: var(--color-accent); min-width: 1.8em; }
.pr-bar { display: inline-block; width: 90px; height: 8px; border-radius: 4px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary);
  overflow: hidden; vertical-align: middle; }
.pr-bar > span { display: block; height: 100%; background: var(--color-accent); }
.pr-hit-text { margin: 3px 0 0 2.6em; line-height: 1.65; font-size: 0.93em; }
.pr-section-title { font-weight: 600; margin: 12px 0 4px; font-size: 1.05em; }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="teal", secondary_hue="amber", font=FONT,
                          font_mono=FONT_MONO)


def launch_options() -> dict[str, Any]:
    """Theme and CSS: in Gradio 6 these are `launch()` arguments, not `Blocks()` ones."""
    return {"theme": theme(), "css": CSS, "ssr_mode": False}


# ---------------------------------------------------------------- errors and messages


def friendly(exc: BaseException) -> str:
    """A message for the user; a traceback only ever goes to the server log."""
    if isinstance(exc, IndexLocked):
        return f"The index is being updated right now; try again in a moment. ({exc})"
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    log.exception("unexpected error in the web UI")
    return (f"Something went wrong on the server ({type(exc).__name__}). The details are in "
            "the server log; please try again.")


def path_bases(engine: Engine) -> list[Path]:
    """Folders that paths are shown relative to, most specific first: the index folder (so
    uploads read uploads/...), the folders its reports came from, and the index's parent."""
    root = engine.root.resolve()
    manifest = idx.read_manifest(engine.root)
    folders = [Path(s) for s in (manifest.sources if manifest else []) if Path(s).is_dir()]
    return [root, *sorted(folders, key=lambda p: -len(p.parts)), root.parent]


def shown_error(engine: Engine, exc: BaseException) -> str:
    """`friendly(exc)` with no server path in it."""
    return scrub(friendly(exc), path_bases(engine))


def message(text: str, kind: str = "warn") -> str:
    return f'<div class="pr-msg pr-{kind}" role="status">{html.escape(text)}</div>'


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


# ---------------------------------------------------------------- inputs


def make_filters(localities: list[str] | str | None = None,
                 doc_ids: list[str] | str | None = None,
                 date_from: str | None = None, date_to: str | None = None) -> Filters:
    """Filters from API or form values; a plain string is one name, not a list of letters.
    Values are checked against the index when the search runs (names and dates alike)."""
    return Filters(localities or None, doc_ids or None, (date_from or "").strip() or None,
                   (date_to or "").strip() or None)


def _k(k: float | int | None) -> int:
    try:
        k = int(k or DEFAULT_K)
    except (TypeError, ValueError):
        raise QueryError("k must be a whole number") from None
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}")
    return k


def _points(k: float | int | None) -> int | None:
    """Points per locality for ask: 0 or nothing is automatic (None), as in `policyrag ask`:
    five, or a report's whole list for a "what were the priorities" question."""
    return _k(k) if k else None


def abstractive_reason() -> str | None:
    """Why abstractive answers are off, or None when a generative backend is available."""
    try:
        return generate.unavailable_reason()
    except Exception as exc:  # noqa: BLE001 - a broken backend must not take the page down
        return f"no generative model available: {exc}"


# ---------------------------------------------------------------- the answer modules, adapted


def _make_answerer(engine: Engine) -> Any:
    from policyrag.answer.extractive import Answerer

    return Answerer(engine)


def _make_rewriter() -> Any:
    from policyrag.answer.abstractive import Rewriter

    return Rewriter()  # the generator loads on first use, not at start-up


_generation_lock = threading.Lock()  # one generation at a time: llama.cpp is not thread-safe


def run_answer(answerer: Any, rewriter: Any, question: str, *, mode: str, by_locality: bool,
               k: int, filters: Filters) -> dict:
    """The one place that calls `policyrag.answer.extractive` / `policyrag.answer.abstractive`: an answer dict
    `{"question","mode","localities":[{"locality","doc_ids","points":[{"text","citations":
    [{"doc_id","chunk_id","start","end","quote"}]}]}], "notice"?}`.

    Abstractive mode falls back to the extractive answer, with a notice, when no generative
    model is available (as `policyrag ask --mode abstractive` does)."""
    if mode not in (EXTRACTIVE, ABSTRACTIVE):
        raise QueryError(f"unknown answer mode {mode!r}; choose {EXTRACTIVE} or {ABSTRACTIVE}")
    answer = answerer.ask(question, by_locality=by_locality, k=k, filters=filters)
    if mode == ABSTRACTIVE:
        reason = abstractive_reason()
        if reason:
            out = answer.to_dict()
            out["notice"] = (f"abstractive mode unavailable: {reason}. Showing the extractive "
                             "answer instead.")
            return out
        from policyrag.answer.abstractive import index_context

        with _generation_lock:
            answer = rewriter.rewrite(answer, **index_context(answerer.engine.index))
    return answer.to_dict()


def stream_rewrite(answerer: Any, rewriter: Any, ans: dict):
    """Yield each generated sentence (a str) as soon as it passed the check, then the final
    answer dict. The model runs in a thread; `_generation_lock` keeps one generation at a time
    across the page and the API."""
    import queue

    from policyrag.answer.abstractive import index_context
    from policyrag.answer.extractive import Answer

    out: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            with _generation_lock:
                done = rewriter.rewrite(Answer.from_dict(ans),
                                        on_point=lambda _loc, point: out.put(point.text),
                                        **index_context(answerer.engine.index))
            out.put(done.to_dict())
        except Exception as exc:  # noqa: BLE001 - shown as the answer's notice, not a crash
            log.exception("abstractive rewrite failed")
            out.put({**ans, "notice": f"abstractive answer failed ({exc}); showing the "
                                      "extractive answer"})

    threading.Thread(target=run, daemon=True).start()
    while True:
        item = out.get()
        yield item
        if isinstance(item, dict):
            return


def writing_html(engine: Engine, ans: dict, written: list[str]) -> str:
    """The extractive answer with the abstractive sentences checked so far above it."""
    items = "".join(f"<li>{_esc(_MARKERS.sub('', t))}</li>" for t in written)
    head = message(f"Writing the abstractive answer: {len(written)} sentence"
                   f"{'s' if len(written) != 1 else ''} checked against the sources so far.",
                   "info")
    return (f'<div class="pr-writing">{head}<ol>{items}</ol></div>'
            f"{render_answer(engine, ans)}")


# ---------------------------------------------------------------- rendering


def _doc_meta(engine: Engine, doc_id: str) -> dict:
    doc = engine.index.documents.get(doc_id)
    if doc is None:
        return {"title": doc_id, "locality": None, "date": None, "text": None}
    return {"title": doc.display_title, "locality": doc.locality, "date": doc.date,
            "text": doc.text}


def _passage_html(engine: Engine, c: dict) -> str:
    """The chunk around a citation, its quoted sentence in <mark>; all report text escaped."""
    meta = _doc_meta(engine, c["doc_id"])
    text = meta["text"]
    start, end = int(c["start"]), int(c["end"])
    if text is None or text[start:end] != c["quote"]:
        body = f"<mark>{_esc(c['quote'])}</mark>"
    else:
        chunk = next((ch for ch in engine.index.chunks if ch.chunk_id == c["chunk_id"]), None)
        # The chunk that holds the quote, with at least a little context after it.
        lo, hi = (chunk.start, chunk.end) if chunk else (start - 120, end + 120)
        lo = max(0, start - 200, min(lo, start))
        hi = min(len(text), end + 200, max(hi, end + 60))
        body = (("…" if lo > 0 else "") + _esc(text[lo:start]) + f"<mark>{_esc(c['quote'])}</mark>"
                + _esc(text[end:hi]) + ("…" if hi < len(text) else ""))
    where = " · ".join(_esc(x) for x in (meta["locality"], meta["date"]) if x)
    return (f'<div class="pr-source"><div class="pr-src-meta"><b>{_esc(meta["title"])}</b>'
            f"{' · ' + where if where else ''} · <code>{_esc(c['chunk_id'])}</code> "
            f"chars {start}–{end}</div><p>{body}</p></div>")


def render_answer(engine: Engine, ans: dict) -> str:
    n = 0
    cards = []
    groups = ans.get("localities", [])
    for loc in groups:
        name = loc.get("locality") or ("All reports" if len(groups) == 1 else
                                       "Locality unknown (set it in a metadata.toml sidecar or "
                                       "front matter)")
        titles = []
        for doc_id in loc.get("doc_ids", []):
            m = _doc_meta(engine, doc_id)
            titles.append(" ".join(x for x in (m["title"], f"({m['date']})" if m["date"] else "")
                                   if x))
        items = []
        for p in loc.get("points", []):
            cites = []
            for c in p.get("citations", []):
                n += 1
                cites.append(f'<details class="pr-cite" data-cite="{n}"><summary title="show the '
                             f'source passage">[{n}]</summary>{_passage_html(engine, c)}</details>')
            text = p.get("text") or ""
            if ans.get("mode") == ABSTRACTIVE:  # its own [n] markers; the chips replace them
                text = _MARKERS.sub("", text)
            items.append(f'<li><span class="pr-point">{_esc(text)}</span>'
                         f'<span class="pr-cites">{"".join(cites)}</span></li>')
        body = (f"<ol>{''.join(items)}</ol>" if items
                else '<p class="pr-empty">Nothing in this locality\'s reports answers the '
                     "question.</p>")
        docs = f'<div class="pr-docs">{_esc(" · ".join(titles))}</div>' if titles else ""
        cards.append(f'<section class="pr-card" data-locality="{_esc(name)}"><h3>{_esc(name)}'
                     f"</h3>{docs}{body}</section>")
    head = (f'<div class="pr-answer-head"><span class="pr-q">{_esc(ans.get("question"))}</span>'
            f'<span class="pr-pill">{_esc(ans.get("mode"))}</span>'
            f'<span class="pr-pill">{len(cards)} '
            f'{"localities" if len(cards) != 1 else "group"}</span>'
            f'<span class="pr-pill">{n} citations</span>{_check_pill(ans)}</div>')
    # A fallback from abstractive mode is a warning; a note about dropped sentences is not.
    kind = "warn" if "unavailable" in (ans.get("notice") or "") else "info"
    notice = message(ans["notice"], kind) if ans.get("notice") else ""
    if ans.get("scope"):
        notice += message("Scope: " + ans["scope"], "info")
    switch = "the abstractive answer mode" if abstractive_reason() is None else None
    if note := quoted_in_chinese(ans.get("question"), ans.get("mode", ""), switch):
        notice += message(note[0].upper() + note[1:] + ".", "info")
    return f'<div class="pr-answer">{head}{notice}{_paged(cards)}</div>'


def _paged(cards: list[str]) -> str:
    """The first page of localities shown, each further page one click away, so a comparison
    over many localities stays readable."""
    pages = [cards[i:i + LOCALITIES_PER_PAGE] for i in range(0, len(cards), LOCALITIES_PER_PAGE)]
    if not pages:
        return '<div class="pr-grid"></div>'
    out = [f'<div class="pr-grid">{"".join(pages[0])}</div>']
    for n, page in enumerate(pages[1:], 1):
        first = n * LOCALITIES_PER_PAGE + 1
        out.append(f'<details class="pr-page"><summary>Localities {first}–'
                   f'{first + len(page) - 1} of {len(cards)}</summary>'
                   f'<div class="pr-grid">{"".join(page)}</div></details>')
    return "".join(out)


def _check_pill(ans: dict) -> str:
    check = ans.get("check")
    if not check or ans.get("mode") != ABSTRACTIVE:
        return ""
    return (f'<span class="pr-pill" title="generated sentences that passed the check against '
            f'their cited sources">{int(check["sentences_kept"])} of '
            f'{int(check["sentences_written"])} sentences checked</span>')


def render_hits(hits: list[Hit]) -> str:
    if not hits:
        return ""
    rows = []
    top = max(h.score for h in hits) or 1.0
    for rank, h in enumerate(hits, 1):
        where = " · ".join(_esc(x) for x in (h.locality, h.title, h.date) if x)
        # Fused (RRF) scores mean nothing to a reader; their share of the best one does.
        share = max(0, min(100, round(100 * h.score / top)))
        rows.append(f'<li class="pr-hit" data-doc="{_esc(h.doc_id)}"><div class="pr-hit-head">'
                    f'<span class="pr-rank">#{rank}</span>'
                    f'<span class="pr-bar" role="meter" aria-valuenow="{share}" '
                    f'aria-valuemin="0" aria-valuemax="100" title="relevance: {share}% of the '
                    f'best passage"><span style="width:{share}%"></span></span>'
                    f"<span>{where}</span>"
                    f'<code class="pr-pill">{_esc(h.chunk_id)}</code></div>'
                    f'<div class="pr-hit-text">{_esc(h.text)}</div></li>')
    return (f'<div class="pr-section-title">Sources · {len(hits)} ranked passages</div>'
            f'<ol class="pr-hits">{"".join(rows)}</ol>')


class AnswerFiles:
    """An answer as Markdown and CSV for the download buttons, written by the same code as the
    `summarize` batch command (reports.py); each answer gets a folder of its own, and only the
    newest `KEEP` folders are kept."""

    KEEP = 64

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = Path(tempfile.mkdtemp(prefix="policyrag-answers-"))
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)
        self._lock = threading.Lock()

    def write(self, ans: dict) -> tuple[str, str]:
        from policyrag.answer.extractive import Answer
        from policyrag.answer.reports import Outcome, write_csv, write_markdown

        outcomes = [Outcome(ans.get("question") or "", Answer.from_dict(ans))]
        titles = {d.doc_id: d.display_title for d in self.engine.index.documents.values()}
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.root))
            for old in sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime)[:-self.KEEP]:
                shutil.rmtree(old, ignore_errors=True)
        md = write_markdown(outcomes, folder / "policyrag-answer.md", titles=titles,
                            heading="policyrag answer", mode=ans.get("mode") or EXTRACTIVE)
        csv = write_csv(outcomes, folder / "policyrag-answer.csv")
        return str(md), str(csv)


# ---------------------------------------------------------------- library


LIBRARY_HEADERS = ["title", "locality", "date", "chunks", "script", "meeting", "doc_id", "source"]


def library_rows(engine: Engine) -> list[list]:
    bases = path_bases(engine)
    return [[d["title"], d["locality"] or "—", d["date"] or "—", d["chunks"], d["script"],
             d["meeting"] or "—", d["doc_id"], relative(d["source"], bases)]
            for d in engine.info()["documents"]]


def doc_choices(engine: Engine) -> list[tuple[str, str]]:
    return [(f"{d['title']} · {d['locality'] or '?'} ({d['doc_id']})", d["doc_id"])
            for d in engine.info()["documents"]]


def upload_summary(done: Upload) -> str:
    """One message for an upload: what went in, what was refused and why."""
    change, parts = done.change, []
    if change is not None:
        if change.added:
            parts.append(f"Added {len(change.added)} report(s): {', '.join(change.added)}")
        if change.replaced:
            parts.append(f"Replaced {len(change.replaced)}: {', '.join(change.replaced)}")
        if change.unchanged:
            parts.append(f"Already indexed, unchanged: {', '.join(change.unchanged)}")
    text = ". ".join(parts) + "." if parts else "Nothing new was added."
    if change is not None and (change.added or change.replaced):
        text += " Searchable now."
    if done.notices:
        text += " Note: " + "; ".join(done.notices) + "."
    if done.skipped or done.refused:
        text += " Not added (nothing of them was kept): " + "; ".join(done.refused
                                                                      + done.skipped)
    return text


def stats_html(engine: Engine) -> str:
    try:
        info = engine.info()
    except Exception as exc:  # noqa: BLE001
        return message(shown_error(engine, exc))
    m = info["manifest"]
    locs = {d["locality"] for d in info["documents"] if d["locality"]}
    model = scrub(m["model"], path_bases(engine))  # a local model folder is a server path too
    return (f'<div class="pr-stats">{len(info["documents"])} reports · {m["chunks"]} passages · '
            f"{len(locs)} localities · model <code>{_esc(model)}</code> · index "
            f"<code>{_esc(engine.root.name)}</code></div>")


# ---------------------------------------------------------------- the app


def build_app(engine: Engine, *, rewriter: Any = None) -> gr.Blocks:
    """The page and the API over `engine`; `rewriter` (an `abstractive.Rewriter`) is made on
    demand unless given."""
    answerer = _make_answerer(engine)
    rewriter = rewriter or _make_rewriter()
    write_lock = threading.Lock()  # uploads and removals one at a time, searches meanwhile
    downloads = AnswerFiles(engine)
    reason = abstractive_reason()

    def localities() -> list[str]:
        return engine.index.localities()

    # -- API endpoints (plain JSON)
    def search(query: str, k: int = DEFAULT_K, localities: list[str] | None = None,
               doc_ids: list[str] | None = None, date_from: str = "", date_to: str = "",
               retrieval: str = "hybrid") -> dict:
        """Ranked passages for a query (simplified/traditional Chinese or English)."""
        try:
            hits = engine.search(query, _k(k), make_filters(localities, doc_ids, date_from,
                                                             date_to), retrieval or None)
        except Exception as exc:  # noqa: BLE001
            return {"query": query, "hits": [], "error": shown_error(engine, exc)}
        bases = path_bases(engine)
        return {"query": query,
                "hits": [{**h.to_dict(), "source": relative(h.source, bases)} for h in hits]}

    def ask(question: str, mode: str = EXTRACTIVE, by_locality: bool = True, k: int = 0,
            localities: list[str] | None = None, doc_ids: list[str] | None = None,
            date_from: str = "", date_to: str = "") -> dict:
        """A cited answer: per locality when by_locality, with quotes and character offsets.
        k is the most points per locality; 0 picks it as `policyrag ask` does."""
        try:
            return run_answer(answerer, rewriter, question, mode=mode or EXTRACTIVE,
                              by_locality=bool(by_locality), k=_points(k),
                              filters=make_filters(localities, doc_ids, date_from, date_to))
        except Exception as exc:  # noqa: BLE001
            return {"question": question, "mode": mode, "localities": [],
                    "error": shown_error(engine, exc)}

    # -- UI handlers (HTML)
    def ask_ui(question, mode, by_locality, k, locs, docs, date_from, date_to):
        """Status, answer and sources as HTML, the answer's Markdown and CSV files, and the
        extractive answer to rewrite when abstractive mode was asked for: the rewriting runs in
        its own queue (write_ui), so that it never holds up other people's searches."""
        *shown, ans = answer_ui(question, EXTRACTIVE, by_locality, k, locs, docs, date_from,
                                date_to)
        files = downloads.write(ans) if ans and ans.get("localities") else (None, None)
        pending = ans if mode == ABSTRACTIVE and ans and ans.get("answered", True) and any(
            loc.get("points") for loc in ans.get("localities", [])) else None
        return (*shown, *(gr.update(value=f, visible=f is not None) for f in files), pending)

    def write_ui(pending):
        """The abstractive answer, one checked sentence at a time, then the whole of it."""
        if not pending:
            yield gr.skip(), gr.skip(), gr.skip()
            return
        reason = abstractive_reason()
        if reason:
            notice = (f"abstractive mode unavailable: {reason}. Showing the extractive answer "
                      "instead.")
            yield render_answer(engine, {**pending, "notice": notice}), gr.skip(), gr.skip()
            return
        written: list[str] = []
        for item in stream_rewrite(answerer, rewriter, pending):
            if isinstance(item, str):
                written.append(item)
                yield writing_html(engine, pending, written), gr.skip(), gr.skip()
            else:
                files = downloads.write(item)
                yield (render_answer(engine, item),
                       *(gr.update(value=f, visible=f is not None) for f in files))

    def answer_ui(question, mode, by_locality, k, locs, docs, date_from, date_to):
        question = (question or "").strip()
        if not question:
            return (message("Please type a question first — for example 各地区分别把哪些工作作为"
                            "重点？ or “How does Luqiao plan to attract private investment?”"),
                    "", "", None)
        try:
            points = _points(k)
            filters = make_filters(locs, docs, date_from, date_to)
            hits = engine.search(question, points or DEFAULT_K, filters)
            if not hits:
                return (message("Nothing found for this question with these filters. Try other "
                                "words, or remove some filters."), "", "", None)
            ans = run_answer(answerer, rewriter, question, mode=mode or EXTRACTIVE,
                             by_locality=bool(by_locality), k=points, filters=filters)
            status = ""
            if not any(loc.get("points") for loc in ans.get("localities", [])):
                status = message("The reports mention these words, but no sentence answers the "
                                 "question directly; see the ranked sources below.", "info")
            return status, render_answer(engine, ans), render_hits(hits), ans
        except Exception as exc:  # noqa: BLE001
            return message(shown_error(engine, exc)), "", "", None

    def refresh_choices():
        try:
            locs, docs = localities(), doc_choices(engine)
        except Exception:  # noqa: BLE001
            locs, docs = [], []
        return (gr.update(choices=locs), gr.update(choices=docs), gr.update(choices=docs,
                                                                             value=None))

    def library_view():
        try:
            return library_rows(engine), stats_html(engine)
        except Exception as exc:  # noqa: BLE001
            return [], message(shown_error(engine, exc))

    def add_files(files, progress=gr.Progress()):  # noqa: B008 - how Gradio injects it
        paths = [Path(f if isinstance(f, str) else f.name) for f in (files or [])]
        if not paths:
            return message("Choose one or more report files (.txt, .md, .html, .docx, .pdf) "
                           "to add."), None
        with write_lock:
            try:
                done = add_uploads(engine, paths, UPLOAD_SUFFIXES, wait=30.0,
                                   progress=lambda f, what: progress(f, desc=what))
            except Exception as exc:  # noqa: BLE001
                return message(f"Nothing was added: {shown_error(engine, exc)}"), None
        return message(scrub(upload_summary(done), path_bases(engine)),
                       "warn" if done.skipped or done.refused else "ok"), None

    def remove_doc(doc_id):
        if not doc_id:
            return message("Choose a report to remove first.")
        with write_lock:
            try:
                doc = engine.index.documents.get(doc_id)
                change = engine.remove([doc_id], wait=30.0)
            except Exception as exc:  # noqa: BLE001
                return message(f"Nothing was removed: {shown_error(engine, exc)}")
            if doc is not None:  # an uploaded copy goes too; other reports keep their files
                forget(engine, doc.source)
        return message(f"Removed {', '.join(change.removed)} from the index.", "ok")

    try:
        initial_locs, initial_docs = localities(), doc_choices(engine)
    except Exception:  # noqa: BLE001 - the page still opens and shows the problem
        initial_locs, initial_docs = [], []

    with gr.Blocks(title="policyrag", analytics_enabled=False) as demo:
        with gr.Column(elem_classes="pr-header"):
            gr.Markdown("# policyrag · local government reports, cited · 地方政府报告问答\n"
                        "Ask in simplified or traditional Chinese, "
                        "or English. Every point cites the sentence it came from — click a "
                        "number to read it in its report.")
            stats = gr.HTML(stats_html(engine), elem_id="stats")
        with gr.Tabs():
            with gr.Tab("Ask", id="ask", elem_id="tab-ask"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        # One line, so that Enter asks (in a taller box it is a newline).
                        question = gr.Textbox(label="Question", elem_id="question", lines=1,
                                              max_lines=6, autofocus=True,
                                              placeholder="各地区分别把哪些工作作为重点？")
                        with gr.Row():
                            ask_btn = gr.Button("Ask", variant="primary", elem_id="ask-btn",
                                                scale=3)
                            clear_btn = gr.Button("Clear", elem_id="clear-btn", scale=1)
                        gr.Examples(EXAMPLES, inputs=[question], label="Examples",
                                    elem_id="examples")
                        with gr.Group():
                            with gr.Row():
                                loc_filter = gr.Dropdown(initial_locs, multiselect=True,
                                                         label="Localities", info="empty: all",
                                                         elem_id="loc-filter")
                                doc_filter = gr.Dropdown(initial_docs, multiselect=True,
                                                         label="Reports", info="empty: all",
                                                         elem_id="doc-filter")
                            with gr.Row():
                                date_from = gr.Textbox(label="From date", elem_id="date-from",
                                                       placeholder="YYYY, YYYY-MM or YYYY-MM-DD")
                                date_to = gr.Textbox(label="To date", elem_id="date-to",
                                                     placeholder="YYYY, YYYY-MM or YYYY-MM-DD")
                    with gr.Column(scale=2):
                        mode = gr.Radio(
                            [EXTRACTIVE, ABSTRACTIVE], value=EXTRACTIVE, label="Answer mode",
                            elem_id="mode", interactive=reason is None,
                            info=("extractive: the reports' own sentences, quoted; abstractive: "
                                  "a generative model rewrites them in your question's language, "
                                  "still cited (slower)") if reason is None
                            else f"abstractive is off — {reason}")
                        by_locality = gr.Checkbox(value=True, label="Compare by locality "
                                                  "(one column per locality)",
                                                  elem_id="by-locality")
                        k = gr.Slider(0, MAX_K, value=0, step=1, elem_id="k",
                                      label="Points per locality (0: automatic)",
                                      info="automatic: 5, or a report's whole list of "
                                           "priorities for a 'what were the priorities' "
                                           "question; also the number of ranked sources")
                status = gr.HTML(elem_id="status")
                answer = gr.HTML(elem_id="answer")
                with gr.Row():
                    download_md = gr.DownloadButton("Download Markdown", visible=False,
                                                    elem_id="download-md", size="sm")
                    download_csv = gr.DownloadButton("Download CSV", visible=False,
                                                     elem_id="download-csv", size="sm")
                pending = gr.State(None)  # an extractive answer awaiting its rewrite
                sources = gr.HTML(elem_id="sources")
            with gr.Tab("Library", id="library", elem_id="tab-library") as lib_tab:
                gr.Markdown("Reports in the index. Add `.txt .md .html .docx .pdf` files: they are embedded "
                            "and searchable at once, no restart. Title, locality and date are "
                            "read from the text (or Markdown front matter).")
                library = gr.Dataframe(headers=LIBRARY_HEADERS, value=None,
                                       elem_id="library", interactive=False, wrap=True,
                                       max_height=720,
                                       column_widths=["25%", "9%", "9%", "7%", "9%", "17%",
                                                      "12%", "12%"])
                with gr.Row(equal_height=False):
                    with gr.Column():
                        upload = gr.File(label="Add reports (.txt, .md, .html, .docx, .pdf)",
                                         file_count="multiple",
                                         file_types=UPLOAD_SUFFIXES, elem_id="upload")
                        upload_status = gr.HTML(elem_id="upload-status")
                    with gr.Column():
                        to_remove = gr.Dropdown(initial_docs, label="Remove a report",
                                                elem_id="remove-doc", value=None)
                        remove_btn = gr.Button("Remove from index", variant="stop",
                                               elem_id="remove-btn")
                        remove_status = gr.HTML(elem_id="remove-status")

        read = {"concurrency_id": "read", "concurrency_limit": READ_CONCURRENCY}
        write = {"concurrency_id": "write", "concurrency_limit": 1}
        ui_inputs = [question, mode, by_locality, k, loc_filter, doc_filter, date_from, date_to]
        outputs = [status, answer, sources, download_md, download_csv]
        # Generation has a queue of its own, one at a time (llama.cpp is not thread-safe):
        # searches and extractive answers go on beside it, and Gradio shows each waiting user
        # their place in that line.
        generation = {"concurrency_id": "generate", "concurrency_limit": 1}
        for trigger in (ask_btn.click, question.submit):
            trigger(ask_ui, ui_inputs, [*outputs, pending], api_visibility="private",
                    **read).then(write_ui, pending, [answer, download_md, download_csv],
                                 api_visibility="private", **generation)
        hidden = gr.update(value=None, visible=False)
        clear_btn.click(lambda: ("", "", "", "", hidden, hidden), None, [question, *outputs],
                        api_visibility="private", queue=False)
        choices = [loc_filter, doc_filter, to_remove]
        after_change: Callable = lambda: (*library_view(), *refresh_choices())  # noqa: E731
        lib_outputs = [library, stats, *choices]
        upload.upload(add_files, upload, [upload_status, upload], api_visibility="private",
                      **write).then(after_change, None, lib_outputs, api_visibility="private")
        remove_btn.click(remove_doc, to_remove, remove_status, api_visibility="private",
                         **write).then(after_change, None, lib_outputs, api_visibility="private")
        lib_tab.select(library_view, None, [library, stats], api_visibility="private")
        demo.load(after_change, None, lib_outputs, api_visibility="private")
        gr.api(search, api_name="search", **read)
        gr.api(ask, api_name="ask", **read)
    demo.queue(default_concurrency_limit=READ_CONCURRENCY)
    return demo


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True,
          quiet: bool = False, **app_options: Any) -> gr.Blocks:
    """Launch the UI; with block=False return at once (the server runs in Gradio's thread).
    `app_options` go to `build_app`."""
    demo = build_app(engine, **app_options)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                share=False, inbrowser=False, quiet=quiet,
                # Errors a user can fix come back as {"error": "..."} from our own handlers;
                # this is for those Gradio raises itself (e.g. an API call with too few
                # inputs), which would otherwise answer {"error": null}.
                show_error=True,
                # Refused while still arriving, before our own check (uploads.check).
                max_file_size=engine.settings.upload_max_bytes,
                **launch_options())
    return demo
