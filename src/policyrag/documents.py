"""From files to Documents: read, clean, extract metadata, apply sidecar overrides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import cleaning, metadata
from .readers import ReadError, discover, read_source
from .script import detect_script


@dataclass
class Document:
    doc_id: str
    source: str
    text: str  # cleaned, in the report's own script; every offset points into it
    title: str | None = None
    locality: str | None = None
    locality_level: str | None = None
    locality_parent: str | None = None
    date: str | None = None
    date_inferred: bool = False
    meeting: str | None = None
    script: str = "simplified"
    content_hash: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def display_title(self) -> str:
        return self.title or self.meeting or self.text[:30]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Document:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


OVERRIDABLE = {"title", "locality", "date", "meeting", "doc_id"}


def content_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def make_document(path: Path, raw: str, doc_id: str | None = None,
                  overrides: dict[str, object] | None = None) -> Document:
    fm, body = metadata.front_matter(raw)
    text = cleaning.clean(body)
    if not text.strip():
        raise ReadError(path, "no report text left after cleaning (empty or only noise)")
    meta = metadata.extract(body, text)
    doc = Document(doc_id=doc_id or path.stem, source=str(path), text=text,
                   script=detect_script(text), content_hash=content_hash(raw), **vars(meta))
    for key, value in {**fm, **(overrides or {})}.items():
        if key in OVERRIDABLE:
            setattr(doc, key, str(value))
        else:
            doc.extra[key] = value
    if "date" in fm or "date" in (overrides or {}):
        doc.date_inferred = False  # stated, not guessed from the text
    return doc


def read_document(path: Path, doc_id: str | None = None,
                  overrides: dict[str, object] | None = None) -> Document:
    """The report in `path`, whatever its format. Metadata the format states (a web page's
    title and date) beats what is guessed from the text; the sidecar's `overrides` beat both."""
    source = read_source(path)
    return make_document(path, source.text, doc_id, {**source.meta, **(overrides or {})})


def load_documents(paths: Iterable[Path]) -> tuple[list[Document], list[ReadError]]:
    """Every readable report under `paths`; each unreadable one becomes an error, not a crash."""
    files, errors = discover(paths)
    docs: list[Document] = []
    sidecars: dict[Path, dict[str, dict[str, object]]] = {}
    seen_ids: set[str] = set()
    for path in files:
        try:
            if path.parent not in sidecars:
                sidecars[path.parent] = metadata.read_sidecar(path.parent)
            doc_id = _unique_id(path, seen_ids)
            overrides = sidecars[path.parent].get(path.name, {})
            doc = read_document(path, doc_id, overrides)
        except ReadError as exc:
            errors.append(exc)
            continue
        except (ValueError, OSError) as exc:
            errors.append(ReadError(path, str(exc)))
            continue
        seen_ids.add(doc.doc_id)
        docs.append(doc)
    return docs, errors


def _unique_id(path: Path, seen: set[str]) -> str:
    """The file's stem; a same-named file from another folder gets a short path hash."""
    if path.stem not in seen:
        return path.stem
    return f"{path.stem}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
