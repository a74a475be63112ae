"""The one engine behind the CLI, the web UI and batch jobs: an index plus the model to query it.

It opens the index lazily, and reopens it when another process (or an upload in the UI) has
committed a newer generation, so additions are visible without a restart.
"""

from __future__ import annotations

import itertools
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from policyrag.config import Settings
from policyrag.display import quoted
from policyrag.index import lifecycle as idx
from policyrag.index import report_vectors
from policyrag.index.embedding import Embedder, EmbedderError, load_embedder
from policyrag.index.progress import Bars
from policyrag.ingest.documents import Document, RenamedReport, iter_documents
from policyrag.ingest.readers import DuplicateReport, KeptStoredText, Notice, ReadError
from policyrag.search import second_opinion
from policyrag.search.retrieval import Filters, Hit, Searcher


class Engine:
    def __init__(self, index_dir: Path | str | None = None, model: str | None = None,
                 settings: Settings | None = None, progress: bool = False) -> None:
        self.settings = settings or Settings()
        self.root = Path(index_dir) if index_dir else self.settings.index_dir
        self.requested_model = model
        self.progress = progress
        self._embedder: Embedder | None = None
        self._index: idx.Index | None = None
        self._lock = threading.RLock()

    # ---- reading ----
    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = idx.embedder_for(self.root, self.requested_model)
            return self._embedder

    @property
    def index(self) -> idx.Index:
        with self._lock:
            if self._index is None or self._index.is_stale():
                try:
                    # Segments the open index already holds are not read again.
                    self._index = idx.open_index(self.root, self.embedder, self._index)
                except idx.ModelMismatch:
                    # Rebuilt elsewhere with another model: follow it, unless the user named one.
                    if self.requested_model is not None:
                        raise
                    self._embedder = None
                    self._index = idx.open_index(self.root, self.embedder)
            return self._index

    def searcher(self) -> Searcher:
        return Searcher(self.index, self.embedder, self.settings)

    def search(self, query: str, k: int | None = None, filters: Filters | None = None,
               mode: str | None = None, places: bool = True) -> list[Hit]:
        return self.searcher().search(query, k, filters, mode, places)

    def exists(self) -> bool:
        return idx.store.current_generation(self.root) is not None

    def info(self) -> dict:
        ix = self.index
        docs = sorted(ix.documents.values(), key=lambda d: d.doc_id)
        per_doc: dict[str, int] = {}
        for c in ix.chunks:
            per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
        reports = report_vectors.coverage(ix)
        return {
            "index": str(self.root),
            "generation": ix.generation.name,
            "manifest": vars(ix.manifest),
            "report_vectors": vars(reports) if reports else None,
            "english_questions": second_opinion.status(
                self.settings.english_rerank, ix.manifest.model,
                self.settings.english_rerank_depth),
            "documents": [{"doc_id": d.doc_id, "title": d.display_title, "locality": d.locality,
                           "level": d.locality_level, "type": d.doc_type,
                           "date": d.date, "meeting": d.meeting, "script": d.script,
                           "source": d.source, "chunks": per_doc.get(d.doc_id, 0)}
                          for d in docs],
        }

    # ---- writing ----
    def _stream(self, paths: list[Path], verb: str) -> tuple[Iterator[Document], list[ReadError]]:
        """The reports in `paths`, read as the writer takes them (so a large collection is
        never held whole), and the list that the unreadable ones are added to meanwhile. The
        first report is read at once: with none, nothing is locked or written."""
        errors: list[ReadError] = []
        docs = iter_documents(paths, errors)
        first = next(docs, None)
        if first is None:
            raise idx.IndexError_(_nothing(verb, paths, errors))
        return itertools.chain([first], docs), errors

    def _writer_embedder(self, model: str) -> Embedder:
        """The loaded model if it is the one wanted (tests share one), else a fresh one."""
        if self._embedder is not None and self._embedder.name == model:
            return self._embedder
        return load_embedder(model)

    def _committed(self, embedder: Embedder | None = None) -> None:
        """After a write the open index is stale: the next use reopens it, reusing what it
        holds of the segments that did not change."""
        with self._lock:
            if embedder is not None:
                self._embedder = embedder

    def build(self, paths: list[Path], wait: float = 0.0) -> tuple[str | None, list[ReadError]]:
        """A new index of the reports in `paths`. Errors name the files skipped; notices
        (DuplicateReport) name files whose content was already there and was indexed once."""
        docs, errors = self._stream(paths, "index")
        embedder = self._writer_embedder(self.requested_model or self.settings.model)
        change = idx.build_index(self.root, docs, embedder, self.settings,
                                 [str(p) for p in paths], self.progress, wait)
        self._committed(embedder)
        self._refresh_reports(wait)
        return change.generation, errors + _duplicates(change)

    def add(self, paths: list[Path], wait: float = 0.0, sources: dict[str, str] | None = None,
            progress: Bars | None = None) -> tuple[idx.Change, list[ReadError]]:
        """Embed only new or changed reports; creates the index if there is none.

        `sources` records a file read from one path as lying at another (an upload is read
        from its staging copy and recorded where it will be kept). `progress` shows how far
        it has got (counts, rate, time left) instead of the engine's own setting."""
        docs, errors = self._stream(paths, "add")
        moved = (_moved(d, sources) for d in docs) if sources else docs
        change = idx.add(self.root, moved, self.embedder, self.settings,
                         self.progress if progress is None else progress, wait)
        self._committed()
        if change.generation:
            self._refresh_reports(wait)
        return change, errors + _duplicates(change)

    def encode_reports(self, encoder: str | None = None, wait: float = 0.0
                       ) -> report_vectors.Coverage:
        """Give the index's report passages vectors from a second encoder (by default the one
        they already have, else EmbeddingGemma); only passages without one are embedded."""
        name = (encoder or report_vectors.stored_model(self.root)
                or report_vectors.DEFAULT_ENCODER)
        embedder = load_embedder(name)
        return report_vectors.encode_reports(self.index, embedder, self.progress, wait)

    def _refresh_reports(self, wait: float) -> None:
        """After a write, an index that has report vectors gets them for its new reports. The
        write itself has been committed: a second encoder that cannot load here (an index
        copied to a machine without it) leaves the vectors as they were, with a warning."""
        if not (self.root / report_vectors.FILE).exists():
            return
        try:
            self.encode_reports(None, wait)
        except EmbedderError as exc:
            warnings.warn(f"report vectors not updated ({exc}); the new reports are searched "
                          "without them until `policyrag index encode-reports` runs",
                          stacklevel=2)

    def remove(self, keys: list[str], wait: float = 0.0) -> idx.Change:
        change = idx.remove(self.root, keys, self.settings, wait)
        self._committed()
        return change

    def compact(self, wait: float = 0.0) -> idx.Compaction:
        done = idx.compact(self.root, self.settings, wait)
        self._committed()
        return done

    def rebuild(self, wait: float = 0.0, from_generation: str | None = None
                ) -> tuple[str | None, list[ReadError]]:
        """Re-read every report from its recorded source and re-embed (with --model, a new model).

        A report whose source file has gone is kept from the text stored in the index; each
        such one comes back as a KeptStoredText notice.
        """
        manifest = idx.read_manifest(self.root)
        model = self.requested_model or (manifest.model if manifest else self.settings.model)
        embedder = self._writer_embedder(model)
        change = idx.rebuild(self.root, embedder, self.settings, self.progress, wait,
                             from_generation)
        self._committed(embedder)
        self._refresh_reports(wait)
        notices: list[ReadError] = [KeptStoredText(Path(source), doc_id, why)
                                    for doc_id, source, why in change.kept]
        return change.generation, notices + [Notice(self.root, n) for n in change.notes]


def _moved(doc: Document, sources: dict[str, str]) -> Document:
    doc.source = sources.get(doc.source, doc.source)
    return doc


def _duplicates(change: idx.Change) -> list[ReadError]:
    """What a change has to say about reports given twice: same content, or a taken doc_id."""
    return ([DuplicateReport(Path(source), doc_id) for source, doc_id in change.duplicates]
            + [RenamedReport(Path(source), wanted, given, other)
               for source, wanted, given, other in change.renamed])


def _nothing(verb: str, paths: list[Path], errors: list[ReadError]) -> str:
    where = ", ".join(map(quoted, paths)) or "(no paths)"
    why = "; ".join(f"{quoted(e.path)}: {e.reason}" for e in errors) or "no .txt/.md/.html/.docx/.pdf reports found"
    return f"nothing to {verb} in {where}: {why}"
