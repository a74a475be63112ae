"""From files to Documents: read, clean, extract metadata, apply sidecar overrides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import cleaning, metadata
from .display import quoted
from .readers import Notice, ReadError, discover, read_file
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


class RenamedReport(Notice):
    """A report whose doc_id was already another report's: indexed under a distinct id."""

    def __init__(self, path: Path, wanted: str, given: str, other: str) -> None:
        super().__init__(path, f"doc_id {wanted!r} is already that of {quoted(other)}; "
                               f"indexed as {given!r}")
        self.doc_id = given


def distinct_id(doc_id: str, digest: str, taken: set[str] | dict[str, str]) -> str:
    """`doc_id` made unique with the report's content hash (and a number if need be)."""
    candidate, n = f"{doc_id}-{digest[:8]}", 2
    while candidate in taken:
        candidate, n = f"{doc_id}-{digest[:8]}-{n}", n + 1
    return candidate


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
    return doc


def load_documents(paths: Iterable[Path]) -> tuple[list[Document], list[ReadError]]:
    """Every readable report under `paths`; each unreadable one becomes an error, not a crash."""
    files, errors = discover(paths)
    docs: list[Document] = []
    sidecars: dict[Path, dict[str, dict[str, object]]] = {}
    seen_ids: dict[str, str] = {}  # doc_id -> source
    for path in files:
        try:
            if path.parent not in sidecars:
                sidecars[path.parent] = metadata.read_sidecar(path.parent)
            doc_id = _unique_id(path, seen_ids)
            overrides = sidecars[path.parent].get(path.name, {})
            doc = make_document(path, read_file(path), doc_id, overrides)
        except ReadError as exc:
            errors.append(exc)
            continue
        except (ValueError, OSError) as exc:
            errors.append(ReadError(path, str(exc)))
            continue
        if doc.doc_id in seen_ids:  # given twice by front matter or a sidecar
            given = distinct_id(doc.doc_id, doc.content_hash, seen_ids)
            errors.append(RenamedReport(path, doc.doc_id, given, seen_ids[doc.doc_id]))
            doc.doc_id = given
        seen_ids[doc.doc_id] = doc.source
        docs.append(doc)
    return docs, errors


def _unique_id(path: Path, seen: dict[str, str]) -> str:
    """The file's stem; a same-named file from another folder gets a short path hash."""
    if path.stem not in seen:
        return path.stem
    return f"{path.stem}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
