"""Turn files on disk into text: encoding detection and per-format readers."""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
# Far above any report; a bigger file is almost surely not one, and would need a lot of memory.
MAX_FILE_BYTES = 64 * 1024 * 1024

# Binary formats sometimes saved with a text suffix, by their first bytes.
MAGIC = {
    b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive (or .docx/.xlsx)",
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive", b"\x7fELF": "an executable", b"\xd0\xcf\x11\xe0": "an old "
    "Office document (.doc/.xls)", b"Rar!": "a RAR archive", b"7z\xbc\xaf": "a 7-Zip archive",
}


class ReadError(ValueError):
    """A file that cannot become report text; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Notice(ReadError):
    """Not an error: nothing was lost, but the user should hear of it."""


class DuplicateReport(Notice):
    """A file with the same content as a report already indexed: indexed once, not twice."""

    def __init__(self, path: Path, doc_id: str) -> None:
        super().__init__(path, f"same content as report {doc_id!r}; indexed once, not twice")
        self.doc_id = doc_id


class KeptStoredText(Notice):
    """A rebuild could not re-read a report's source, so it kept the text stored in the index."""

    def __init__(self, path: Path, doc_id: str, why: str) -> None:
        super().__init__(path, f"{why}; kept report {doc_id!r} from the text stored in the index")
        self.doc_id = doc_id


@dataclass
class Source:
    """What a reader got from a file: the text, and metadata the format itself states (a web
    page's title and date), which the report's sidecar may still override."""

    text: str
    meta: dict[str, str] = field(default_factory=dict)


def decode_bytes(data: bytes, path: Path) -> str:
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            raise ReadError(path, f"looks like {what}, not text")
    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ReadError(path, "looks like a binary file (NUL bytes), not text")
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as exc:
                raise ReadError(path, f"starts with a {enc} byte-order mark but is not valid "
                                      f"{enc} ({exc.reason} at byte {exc.start})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    bad = _utf8_damage(data)
    if bad:
        # A UTF-8 file with a few broken bytes; reading it as GB18030 would garble it all.
        line = data.count(b"\n", 0, utf8_error.start) + 1
        first = data[utf8_error.start:utf8_error.end].hex(" ")
        raise ReadError(path, f"is UTF-8 except for {bad} undecodable byte sequence"
                              f"{'s' if bad > 1 else ''}, the first ({first}) at byte "
                              f"{utf8_error.start}, line {line}; re-save it as UTF-8")
    # GB18030 is a superset of GBK and GB2312, the usual encodings of mainland Chinese text.
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None and _mostly_text(text):
        return text
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None and _mostly_text(str(best)):
        return str(best)
    raise ReadError(path, "cannot decode as UTF-8, GB18030/GBK or any detected encoding "
                          "(binary, or undecodable bytes)")


def _utf8_damage(data: bytes) -> int:
    """How many broken sequences `data` has if it is UTF-8 text with a few of them (0 if it
    looks like another encoding altogether)."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    wide = sum(1 for ch in text if ord(ch) > 0x7F) - bad
    return bad if wide >= 8 and bad <= max(4, wide // 50) else 0


def _mostly_text(text: str) -> bool:
    if not text:
        return True
    # Control characters, replacement characters and private-use code points (what Big5 or
    # random bytes read as GB18030 turn into) mark a wrong guess.
    bad = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\n\r\t\f")
              or 0x7F <= ord(ch) < 0xA0 or ch == "\ufffd" or 0xE000 <= ord(ch) <= 0xF8FF)
    return bad / len(text) < 0.01


def read_plain(path: Path) -> str:
    return decode_bytes(path.read_bytes(), path)


def read_html(path: Path) -> Source:
    from policyrag.ingest.webpage import extract_page

    page = extract_page(read_plain(path))
    meta = {k: v for k, v in (("title", page.title), ("date", page.date)) if v}
    return Source(page.text, meta)


def read_docx(path: Path) -> str:
    """Paragraphs and tables in document order; a table row is one line, cells split by " | "."""
    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile):
        raise ReadError(path, "is not a readable .docx file (not a ZIP package); an old .doc "
                              "must be saved as .docx first") from None
    except (KeyError, ValueError) as exc:  # a ZIP without the parts of a Word document
        raise ReadError(path, f"is not a readable .docx file ({exc})") from None
    return "\n".join(_block_text(block) for block in document.iter_inner_content()) + "\n"


def _block_text(block: Paragraph | Table) -> str:
    from docx.table import Table

    if not isinstance(block, Table):
        return block.text
    rows = []
    for row in block.rows:
        cells, last = [], None
        for cell in row.cells:
            if cell._tc is last:  # a merged cell comes back once per grid column it spans
                continue
            last = cell._tc
            cells.append(" ".join(_block_text(b).replace("\n", " ")
                                  for b in cell.iter_inner_content()).strip())
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def read_pdf(path: Path) -> str:
    from policyrag.ingest.pdftext import PdfTextError, pdf_text

    try:
        return pdf_text(path)
    except PdfTextError as exc:
        raise ReadError(path, str(exc)) from None


# Readers by suffix: the hook for new formats.
READERS: dict[str, Callable[[Path], str | Source]] = {
    **{s: read_plain for s in TEXT_SUFFIXES},
    ".html": read_html,
    ".htm": read_html,
    ".docx": read_docx,
    ".pdf": read_pdf,
}


def read_source(path: Path) -> Source:
    if not path.exists():
        raise ReadError(path, "no such file")
    if not path.is_file():
        raise ReadError(path, "not a regular file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ReadError(path, f"unsupported file type {path.suffix or '(none)'}; "
                              f"supported: {', '.join(sorted(READERS))}")
    size = path.stat().st_size
    if size == 0:
        raise ReadError(path, "is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ReadError(path, f"is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB "
                              "limit for one report; split it into several files")
    got = reader(path)
    source = got if isinstance(got, Source) else Source(got)
    if not source.text.strip():
        raise ReadError(path, "holds only whitespace, no text")
    return source


def read_file(path: Path) -> str:
    return read_source(path).text


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[ReadError]]:
    """Expand folders into the supported files inside them, sorted for stable ids.

    What a folder holds that is not a file or a folder (a symbolic link loop, a broken link, a
    link to a folder, a named pipe, a socket, a device) is skipped and named once, with why;
    opening a named pipe would hang the build.
    """
    import errno
    import stat

    def special(path: Path) -> str | None:
        """Why `path` cannot be read as a file, or None if it is a file or a real folder."""
        try:
            mode = path.stat().st_mode  # follows links
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "is a symbolic link loop; skipped"
            if path.is_symlink():
                return "is a broken symbolic link (its target does not exist); skipped"
            return f"cannot be read ({exc.strerror or exc}); skipped"
        if stat.S_ISREG(mode):
            return None
        if stat.S_ISDIR(mode):
            return ("is a link to a folder, which is not followed; skipped (name the folder "
                    "itself to index it)") if path.is_symlink() else None
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or
                stat.S_ISBLK(mode) else "not a regular file")
        return f"is {kind}, not a file; skipped"

    found: list[Path] = []
    errors: list[ReadError] = []
    named: set[Path] = set()

    def skip(path: Path, why: str) -> None:
        if path not in named:
            named.add(path)
            errors.append(ReadError(path, why))

    for p in paths:
        if p.is_dir():
            inside = []
            for f in sorted(p.rglob("*")):
                if f.name.startswith("."):
                    continue
                why = special(f)
                if why is not None:
                    skip(f, why)
                elif (f.is_file() and f.suffix.lower() in READERS
                      and f.name.lower() != "readme.md"):
                    inside.append(f)
            if not inside:
                skip(p, "folder holds no .txt/.md/.html/.docx/.pdf files")
            found.extend(inside)
        elif p.exists():
            found.append(p)
        else:
            skip(p, (special(p) if p.is_symlink() else None) or "no such file or folder")
    return found, errors
