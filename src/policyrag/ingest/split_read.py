"""load_documents in halves, so that the reading can run on other machines (raybuild.py).

`plan` (where the files are) discovers the inputs and reads each file's bytes, or each line
of a collection; `read_batch` (anywhere: a Ray worker) turns them into Documents, cleaning
and extracting metadata as load_documents does; `settle` (where the files are again) gives
doc_ids in file order and the same errors and notices, in the same order, as load_documents
gives for the same inputs. Only bytes and plain values travel between the halves.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policyrag.index.lexical import slogans
from policyrag.ingest import metadata
from policyrag.ingest.documents import (
    CollectionRow,
    Document,
    RenamedReport,
    _unique_id,
    collection_document,
    collection_rows,
    distinct_id,
    is_collection,
    read_document,
)
from policyrag.ingest.readers import MAX_FILE_BYTES, ReadError, discover, read_source

# A doc_id no report can have: what a worker passes for "not given by the report itself".
_UNSET = "\0policyrag-unset"


@dataclass
class Entry:
    """One input in the order load_documents meets it: a file, a collection line, or an error
    known before any reading (a line that is no JSON, an unreadable sidecar)."""
    path: Path
    row: CollectionRow | None = None
    error: ReadError | None = None
    item: dict | None = None  # what goes to a worker


def plan(paths: list[Path]) -> tuple[list[Entry], list[ReadError]]:
    """The inputs under `paths`, each file's bytes read (I/O only: parsing runs on workers)."""
    files, errors = discover(paths)
    entries: list[Entry] = []
    sidecars: dict[Path, dict[str, dict[str, object]]] = {}
    for path in files:
        if is_collection(path):
            for row in collection_rows(path):
                if isinstance(row, ReadError):
                    entries.append(Entry(path, error=row))
                else:
                    entries.append(Entry(path, row, item=_row_item(path, row)))
            continue
        try:
            if path.parent not in sidecars:
                sidecars[path.parent] = metadata.read_sidecar(path.parent)
            overrides = sidecars[path.parent].get(path.name, {})
            if path.stat().st_size > MAX_FILE_BYTES:
                read_source(path)  # refuses it, with the reader's own words, before reading
            data = path.read_bytes()
        except ReadError as exc:
            entries.append(Entry(path, error=exc))
            continue
        except (ValueError, OSError) as exc:
            entries.append(Entry(path, error=ReadError(path, str(exc))))
            continue
        entries.append(Entry(path, item={"kind": "file", "path": str(path),
                                         "where": str(path), "data": data,
                                         "text": "", "doc_id": "",
                                         "overrides": pickle.dumps(overrides)}))
    for seq, entry in enumerate(entries):
        if entry.item is not None:
            entry.item["seq"] = seq
    return entries, errors


def _row_item(path: Path, row: CollectionRow) -> dict:
    return {"kind": "row", "path": str(path), "where": str(row.where), "data": b"",
            "text": row.text, "doc_id": row.doc_id, "overrides": pickle.dumps(row.overrides)}


def _read_file(path: Path, data: bytes, overrides: dict) -> Document:
    """The report in the bytes of `path`, read from a private copy under the same name."""
    with tempfile.TemporaryDirectory(prefix="policyrag-ray-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(data)
        try:
            doc = read_document(copy, _UNSET, overrides)
        except ReadError as exc:
            raise ReadError(path, exc.reason.replace(str(copy), str(path))) from None
        except (ValueError, OSError) as exc:
            raise ReadError(path, str(exc).replace(str(copy), str(path))) from None
    doc.source = str(path)
    return doc


def read_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """On a worker (stage 1 of raybuild.py): inputs to Documents and their slogans, or errors.

    Documents and overrides travel pickled: a sidecar's TOML may hold dates, which must
    arrive as the single-process build sees them."""
    docs, errors, found = [], [], []
    for kind, path, where, data, text, doc_id, given in zip(
            batch["kind"], batch["path"], batch["where"], batch["data"], batch["text"],
            batch["doc_id"], batch["overrides"], strict=True):
        overrides = pickle.loads(given)
        try:
            if kind == "row":
                doc = collection_document(Path(path), CollectionRow(Path(where), doc_id, text,
                                                                    overrides))
            else:
                doc = _read_file(Path(path), bytes(data), overrides)
        except ReadError as exc:
            docs.append(b"")
            errors.append(json.dumps([str(exc.path), exc.reason], ensure_ascii=False))
            found.append("[]")
            continue
        docs.append(pickle.dumps(doc))
        errors.append("")
        found.append(json.dumps(slogans([doc.text]), ensure_ascii=False))
    return {"seq": batch["seq"], "doc": np.array(docs, dtype=object),
            "error": np.array(errors, dtype=object), "slogans": np.array(found, dtype=object)}


def settle(entries: list[Entry], results: dict[int, dict], errors: list[ReadError]
           ) -> tuple[list[Document], list[ReadError], dict[str, list[str]]]:
    """What load_documents would give for the same inputs: doc_ids and errors in file order.
    Also each report's slogans, by doc_id."""
    docs: list[Document] = []
    errors = list(errors)
    seen: dict[str, str] = {}
    found: dict[str, list[str]] = {}
    for seq, entry in enumerate(entries):
        if entry.error is not None:
            errors.append(entry.error)
            continue
        got = results[seq]
        if entry.row is not None and entry.row.doc_id in seen:
            errors.append(ReadError(entry.row.where, f"duplicate id {entry.row.doc_id!r}; "
                                                     "skipped"))
            continue
        if got["error"]:
            where, reason = json.loads(got["error"])
            errors.append(ReadError(Path(where), reason))
            continue
        doc: Document = pickle.loads(got["doc"])
        if doc.doc_id == _UNSET:
            doc.doc_id = _unique_id(entry.path, seen)
        if entry.row is None and doc.doc_id in seen:  # given twice by front matter or sidecar
            given = distinct_id(doc.doc_id, doc.content_hash, seen)
            errors.append(RenamedReport(entry.path, doc.doc_id, given, seen[doc.doc_id]))
            doc.doc_id = given
        seen[doc.doc_id] = doc.source
        found[doc.doc_id] = json.loads(got["slogans"])
        docs.append(doc)
    return docs, errors, found
