"""From files to Documents: read, clean, extract metadata, apply sidecar overrides."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from policyrag.display import quoted
from policyrag.ingest import cleaning, metadata
from policyrag.ingest.doctype import DOC_TYPES
from policyrag.ingest.gazetteer import lookup
from policyrag.ingest.readers import Notice, ReadError, discover, read_source
from policyrag.script import detect_script


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
    # communique | work_report | report | regulation | news | other (see doctype.py)
    doc_type: str | None = None
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


OVERRIDABLE = {"title", "locality", "locality_level", "locality_parent", "date", "meeting",
               "doc_type", "doc_id"}


def content_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def make_document(path: Path, raw: str, doc_id: str | None = None,
                  overrides: dict[str, object] | None = None) -> Document:
    fm, body = metadata.front_matter(raw)
    text = cleaning.clean(body)
    if not text.strip():
        raise ReadError(path, "no report text left after cleaning (empty or only noise)")
    given = {**fm, **(overrides or {})}
    stated = str(given["title"]) if given.get("title") else None
    meta = metadata.extract(body, text, stated)
    doc = Document(doc_id=doc_id or path.stem, source=str(path), text=text,
                   script=detect_script(text), content_hash=content_hash(raw), **vars(meta))
    for key, value in given.items():
        if key in OVERRIDABLE:
            setattr(doc, key, str(value))
        else:
            doc.extra[key] = value
    if "locality" in given:
        _place_overridden_locality(doc, given)
    if "date" in given:
        doc.date_inferred = False
    if "doc_type" in given and doc.doc_type not in DOC_TYPES:
        raise ValueError(f"{path.name}: doc_type {doc.doc_type!r} is not one of {', '.join(DOC_TYPES)}")
    return doc


COLLECTION_SUFFIXES = (".jsonl", ".jsonl.gz")


def is_collection(path: Path) -> bool:
    """A JSON Lines file of many texts (one `{"text", "id"?, "title"?, ...}` object a line)."""
    return path.name.lower().endswith(COLLECTION_SUFFIXES)


def _collection_lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        yield from enumerate(fh, 1)


@dataclass
class CollectionRow:
    """One line of a collection, parsed but not yet made a Document."""
    where: Path  # `path:line`, how errors name it
    doc_id: str
    text: str
    overrides: dict[str, object]


def collection_rows(path: Path) -> Iterator[CollectionRow | ReadError]:
    """Each non-blank line of a collection, parsed; a line that is no text object is an error."""
    try:
        for n, line in _collection_lines(path):
            if not line.strip():
                continue
            where = Path(f"{path}:{n}")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield ReadError(where, f"not valid JSON ({exc.msg})")
                continue
            text = row.get("text") if isinstance(row, dict) else None
            if not isinstance(text, str):
                yield ReadError(where, 'expected an object with a "text" string')
                continue
            doc_id = str(row.get("id") or row.get("doc_id") or f"{path.name}-{n}")
            overrides = {k: v for k, v in row.items()
                         if k in OVERRIDABLE and k != "doc_id" and v not in (None, "")}
            yield CollectionRow(where, doc_id, text, overrides)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        yield ReadError(path, f"cannot read the collection: {exc}")


def collection_document(path: Path, row: CollectionRow) -> Document:
    """The report on one line of the collection `path`; a ReadError naming the line if none."""
    try:
        return make_document(Path(f"{path}#{row.doc_id}"), row.text, row.doc_id, row.overrides)
    except ReadError as exc:
        raise ReadError(row.where, exc.reason) from None
    except ValueError as exc:  # a metadata field with a value it cannot take
        raise ReadError(row.where, str(exc)) from None


def read_collection(path: Path, seen_ids: dict[str, str]
                    ) -> tuple[list[Document], list[ReadError]]:
    """Each line of a collection becomes a document whose source is `path#id`."""
    errors: list[ReadError] = []
    return list(iter_collection(path, seen_ids, errors)), errors


def iter_collection(path: Path, seen_ids: dict[str, str], errors: list[ReadError]
                    ) -> Iterator[Document]:
    """The documents of a collection one by one (a line at a time is read), whose source is
    `path#id`; each line that cannot be one is appended to `errors`.

    Fields named like the overridable metadata (title, locality, date, doc_type…) are taken
    as given; the rest of the metadata is extracted from the text as for a file.
    """
    for row in collection_rows(path):
        if isinstance(row, ReadError):
            errors.append(row)
            continue
        if row.doc_id in seen_ids:
            errors.append(ReadError(row.where, f"duplicate id {row.doc_id!r}; skipped"))
            continue
        try:
            doc = collection_document(path, row)
        except ReadError as exc:
            errors.append(exc)
            continue
        seen_ids[row.doc_id] = doc.source
        yield doc


def _place_overridden_locality(doc: Document, given: dict[str, object]) -> None:
    """A locality set by hand brings its level and parent from the gazetteer, unless they were
    set too, so that filters on 丽水 still find a report placed in 莲都区."""
    place = lookup(doc.locality or "", str(given.get("locality_parent") or "") or None)
    if "locality_level" not in given:
        doc.locality_level = place.level if place else None
    if "locality_parent" not in given:
        doc.locality_parent = place.parent if place else None


def read_document(path: Path, doc_id: str | None = None,
                  overrides: dict[str, object] | None = None) -> Document:
    """The report in `path`, whatever its format. Metadata the format states (a web page's
    title and date) beats what is guessed from the text; the sidecar's `overrides` beat both."""
    source = read_source(path)
    return make_document(path, source.text, doc_id, {**source.meta, **(overrides or {})})


def load_documents(paths: Iterable[Path]) -> tuple[list[Document], list[ReadError]]:
    """Every readable report under `paths`; each unreadable one becomes an error, not a crash."""
    errors: list[ReadError] = []
    return list(iter_documents(paths, errors)), errors


def iter_documents(paths: Iterable[Path], errors: list[ReadError]) -> Iterator[Document]:
    """The readable reports under `paths`, one at a time, so that a build need not hold them
    all; each unreadable one is appended to `errors` as it is met, not raised."""
    files, found = discover(paths)
    errors += found
    sidecars: dict[Path, dict[str, dict[str, object]]] = {}
    seen_ids: dict[str, str] = {}  # doc_id -> source
    for path in files:
        if is_collection(path):
            yield from iter_collection(path, seen_ids, errors)
            continue
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
        if doc.doc_id in seen_ids:  # given twice by front matter or a sidecar
            given = distinct_id(doc.doc_id, doc.content_hash, seen_ids)
            errors.append(RenamedReport(path, doc.doc_id, given, seen_ids[doc.doc_id]))
            doc.doc_id = given
        seen_ids[doc.doc_id] = doc.source
        yield doc


def _unique_id(path: Path, seen: dict[str, str]) -> str:
    """The file's stem; a same-named file from another folder gets a short path hash."""
    if path.stem not in seen:
        return path.stem
    return f"{path.stem}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
