"""Turn files on disk into text: encoding detection and per-format readers."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}


class ReadError(ValueError):
    """A file that cannot become report text; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def decode_bytes(data: bytes, path: Path) -> str:
    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ReadError(path, "looks like a binary file (NUL bytes), not text")
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(enc)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
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
    raise ReadError(path, "cannot decode as UTF-8, GB18030/GBK or any detected encoding")


def _mostly_text(text: str) -> bool:
    if not text:
        return True
    bad = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\n\r\t\f") or ch == "\ufffd")
    return bad / len(text) < 0.01


def read_plain(path: Path) -> str:
    return decode_bytes(path.read_bytes(), path)


def read_html(path: Path) -> str:
    import html
    import re

    raw = read_plain(path)
    raw = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", raw)
    raw = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h\d>|</li>", "\n", raw)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def _needs(package: str, suffix: str) -> Callable[[Path], str]:
    def reader(path: Path) -> str:
        raise ReadError(path, f"{suffix} files need the optional package {package!r}; "
                              "install it or convert the file to .txt")
    return reader


def read_docx(path: Path) -> str:
    try:
        import docx  # python-docx
    except ImportError:
        return _needs("python-docx", ".docx")(path)
    return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)


def read_pdf(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        return _needs("pypdf", ".pdf")(path)
    return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


# Readers by suffix: the hook for new formats.
READERS: dict[str, Callable[[Path], str]] = {
    **{s: read_plain for s in TEXT_SUFFIXES},
    ".html": read_html,
    ".htm": read_html,
    ".docx": read_docx,
    ".pdf": read_pdf,
}


def read_file(path: Path) -> str:
    if not path.exists():
        raise ReadError(path, "no such file")
    if not path.is_file():
        raise ReadError(path, "not a regular file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ReadError(path, f"unsupported file type {path.suffix or '(none)'}; "
                              f"supported: {', '.join(sorted(READERS))}")
    return reader(path)


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[ReadError]]:
    """Expand folders into the supported files inside them, sorted for stable ids."""
    found: list[Path] = []
    errors: list[ReadError] = []
    for p in paths:
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file()
                            and f.suffix.lower() in READERS and not f.name.startswith("."))
            inside = [f for f in inside if f.name.lower() != "readme.md"]
            if not inside:
                errors.append(ReadError(p, "folder holds no .txt/.md/.html/.docx/.pdf files"))
            found.extend(inside)
        elif p.exists():
            found.append(p)
        else:
            errors.append(ReadError(p, "no such file or folder"))
    return found, errors
