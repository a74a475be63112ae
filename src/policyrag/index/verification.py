"""`policyrag index verify`: every disagreement between the manifest, the segments' files and
the tombstones of an index, named; nothing trusted from the record of verified checksums."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import faiss

from policyrag.index import ann, store
from policyrag.index.checksum import matches
from policyrag.index.embedding import Embedder
from policyrag.index.lifecycle import Manifest, ModelMismatch, _missing, check_model
from policyrag.index.segments import Segment


def verify_index(root: Path, embedder: Embedder | None = None) -> list[str]:
    """Every disagreement between manifest, segments (vectors, chunk store, documents) and
    tombstones; empty when all is well. Never trusts the record of verified checksums.

    With `embedder`, also checks that the index was built with that model.
    """
    root = Path(root)
    name = store.read_current(root)
    if name is None:
        if store.current_is_blank(root):
            return [f"{root / store.CURRENT} is empty, so no generation is live"]
        raise _missing(root)
    gen = root / name
    if not gen.is_dir():
        return [f"{store.CURRENT} names {name}, which does not exist"]
    try:
        manifest = Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except FileNotFoundError:
        return ["manifest.json is missing"]
    except (OSError, ValueError, TypeError) as exc:
        return [f"manifest.json cannot be read: {exc}"]
    problems: list[str] = []
    segs = manifest.segment_list(gen.name)
    found = [_verify_segment(root, gen, seg, manifest.dim, problems) for seg in segs]
    if embedder is not None:
        try:
            check_model(manifest, embedder, root)
        except ModelMismatch as exc:
            problems.append(str(exc))
    if manifest.format_version >= 2:
        problems += _verify_totals(gen, manifest, segs, found)
    if all(f is not None and f[1] is not None and f[2] is not None for f in found):
        chunks = [r for f in found for r in f[1]]
        docs = [r for f in found for r in f[2]]
        problems += _check_ids(chunks, docs)
    return problems


# (live vectors or None, live chunk rows or None, live document rows or None) of a segment
Found = tuple[int | None, list[dict] | None, list[dict] | None] | None


def _verify_segment(root: Path, gen: Path, seg: Segment, dim: int,
                    problems: list[str]) -> Found:
    folder = root / seg.name
    if not folder.is_dir():
        problems.append(f"segment {seg.name} is missing (its folder does not exist)")
        return None
    label = lambda fname: seg.label(fname, gen.name)  # noqa: E731
    for fname in seg.files():
        path = folder / fname
        if not path.exists():
            problems.append(f"{label(fname)} is missing")
            continue
        size, want = path.stat().st_size, seg.sizes.get(fname)
        if want is not None and size != want:
            problems.append(f"{label(fname)} is {size} bytes, manifest.json says {want} "
                            "(truncated or overwritten)")
        elif not matches(path, seg.checksums.get(fname)):
            problems.append(f"{label(fname)} does not match its checksum in manifest.json "
                            "(corrupted or edited)")
    vectors = chunks = docs = None
    if (folder / "vectors.faiss").exists():
        try:
            vectors = faiss.read_index(str(folder / "vectors.faiss"))
        except RuntimeError:
            problems.append(f"{label('vectors.faiss')} cannot be read by FAISS (truncated or "
                            "corrupted)")
    for fname in ("chunks.jsonl", "documents.jsonl"):
        if (folder / fname).exists():
            try:
                rows = store.load_jsonl(folder / fname)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if fname == "chunks.jsonl":
                chunks = rows
            else:
                docs = rows
    if vectors is not None:
        problems += _shape_problems(label("vectors.faiss"), vectors, dim, seg.chunks)
        if chunks is not None and vectors.ntotal != len(chunks):
            problems.append(f"{label('vectors.faiss')} holds {vectors.ntotal} vectors but "
                            f"{label('chunks.jsonl')} has {len(chunks)} chunks")
    if seg.ann:
        problems += _verify_ann(folder, seg, dim, label)
    if chunks is not None and len(chunks) != seg.chunks:
        problems.append(f"{label('chunks.jsonl')} has {len(chunks)} chunks, manifest.json says "
                        f"{seg.chunks}")
    if docs is not None and len(docs) != seg.documents:
        problems.append(f"{label('documents.jsonl')} has {len(docs)} documents, manifest.json "
                        f"says {seg.documents}")
    problems += _verify_tombstones(seg, chunks, docs)
    removed = set(seg.removed)
    live_chunks = None if chunks is None else [
        r for r in chunks if not isinstance(r, dict) or r.get("doc_id") not in removed]
    live_docs = None if docs is None else [
        r for r in docs if not isinstance(r, dict) or r.get("doc_id") not in removed]
    live_vectors = None if vectors is None else vectors.ntotal - seg.removed_chunks
    return live_vectors, live_chunks, live_docs


def _verify_ann(folder: Path, seg: Segment, dim: int, label) -> list[str]:
    """The approximate index reads and holds the segment's rows (ann.py)."""
    if not (folder / ann.ANN_FILE).exists():
        return []  # named missing above
    try:
        index = faiss.read_index(str(folder / ann.ANN_FILE))
    except RuntimeError:
        return [f"{label(ann.ANN_FILE)} cannot be read by FAISS (truncated or corrupted)"]
    return _shape_problems(label(ann.ANN_FILE), index, dim, seg.chunks)


def _shape_problems(name: str, index: faiss.Index, dim: int, rows: int) -> list[str]:
    """A FAISS file whose dimension or vector count is not what the manifest says."""
    problems = []
    if index.d != dim:
        problems.append(f"{name} holds {index.d}-dim vectors, manifest.json says {dim}")
    if index.ntotal != rows:
        problems.append(f"{name} holds {index.ntotal} vectors, manifest.json says {rows} chunks")
    return problems


def _verify_tombstones(seg: Segment, chunks: list[dict] | None,
                       docs: list[dict] | None) -> list[str]:
    if not seg.removed or docs is None or chunks is None:
        return []
    removed = set(seg.removed)
    try:
        held = {d["doc_id"] for d in docs}
        rows = sum(1 for c in chunks if c["doc_id"] in removed)
    except (KeyError, TypeError):
        return []  # _check_ids names rows without ids
    problems = []
    strangers = sorted(removed - held)
    if strangers:
        problems.append(f"segment {seg.name} tombstones reports it does not hold: "
                        f"{', '.join(strangers[:5])}")
    if rows != seg.removed_chunks:
        problems.append(f"segment {seg.name}: manifest.json counts {seg.removed_chunks} removed "
                        f"rows, its chunk store holds {rows} rows of the removed reports")
    return problems


def _verify_totals(gen: Path, manifest: Manifest, segs: list[Segment],
                   found: list[Found]) -> list[str]:
    """The manifest's live totals against the segments' live rows. With one segment and no
    tombstones the files are the whole index, and are named as such."""
    if any(f is None for f in found):
        return []
    one = len(segs) == 1 and not segs[0].removed
    where = (lambda fname: segs[0].label(fname, gen.name)) if one else (  # noqa: E731
        lambda fname: f"the {len(segs)} segments' {fname} files")
    vectors = [f[0] for f in found]
    chunks = [f[1] for f in found]
    docs = [f[2] for f in found]
    problems = []
    if None not in vectors and sum(vectors) != manifest.chunks:
        problems.append(f"{where('vectors.faiss')} hold{'s' if one else ''} {sum(vectors)} "
                        f"{'' if one else 'live '}vectors, manifest.json says {manifest.chunks} "
                        "chunks")
    if None not in chunks and sum(map(len, chunks)) != manifest.chunks:
        problems.append(f"{where('chunks.jsonl')} ha{'s' if one else 've'} "
                        f"{sum(map(len, chunks))} {'' if one else 'live '}chunks, manifest.json "
                        f"says {manifest.chunks}")
    if None not in docs and sum(map(len, docs)) != manifest.documents:
        problems.append(f"{where('documents.jsonl')} ha{'s' if one else 've'} "
                        f"{sum(map(len, docs))} {'' if one else 'live '}documents, "
                        f"manifest.json says {manifest.documents}")
    return problems


def _check_ids(chunks: list[dict], docs: list[dict]) -> list[str]:
    problems = []
    try:
        doc_ids = [d["doc_id"] for d in docs]
        by_id = {d["doc_id"]: d for d in docs}
        chunk_ids = [c["chunk_id"] for c in chunks]
        chunk_docs = {c["doc_id"] for c in chunks}
    except (KeyError, TypeError) as exc:
        return [f"a chunk or document row lacks its id ({exc})"]
    for what, ids in (("doc_id", doc_ids), ("chunk_id", chunk_ids)):
        repeated = sorted(str(i) for i, n in Counter(ids).items() if n > 1)
        if repeated:
            problems.append(f"repeated {what}s: {', '.join(map(str, repeated[:5]))}")
    orphans = sorted(chunk_docs - set(by_id))
    if orphans:
        problems.append(f"chunks of unknown documents: {', '.join(map(str, orphans[:5]))}")
    empty = sorted(set(by_id) - chunk_docs)
    if empty:
        problems.append(f"documents without chunks: {', '.join(map(str, empty[:5]))}")
    for c in chunks:
        doc = by_id.get(c.get("doc_id"))
        try:
            ok = doc is None or doc["text"][c["start"]:c["end"]] == c["text"]
        except (KeyError, TypeError):
            ok = False
        if not ok:
            problems.append(f"chunk {c.get('chunk_id')} does not match its document's text at "
                            f"its offsets (chunk store edited?)")
            break
    return problems
