"""Text PDFs to report text: lines in reading order, running heads and page numbers dropped,
lines that only wrap joined back into their paragraph.

pdfminer.six gives every text line with its position on the page, which is what telling a
wrap from a paragraph end, and a running head from the body, needs; it also ships the CMaps
that map the CJK fonts of Chinese PDFs (Adobe-GB1, -CNS1) back to Unicode.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from policyrag.ingest.cleaning import CJK

# Page furniture: "- 3 -", "— 3 —", "第3页", "第 3 页 共 12 页", "3/12", "Page 3 of 12", "3".
PAGE_NUMBER = re.compile(
    r"^[-—–―\s]*(?:\d+|[ivxlc]+)[-—–―\s]*$"
    r"|^第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?$"
    r"|^(?:共\s*\d+\s*页\s*)?第\s*\d+\s*页$"
    r"|^\d+\s*/\s*\d+$"
    r"|^page\s*\d+(?:\s*(?:of|/)\s*\d+)?$",
    re.I,
)
EDGE_LINES = 3  # lines from the top and from the bottom of a page that may be furniture
RUNNING_MAX_CHARS = 40  # running heads and feet are short; a body line is rarely repeated
RUNNING_SHARE = 0.5  # ... and they recur on at least this share of the pages
# A wrapped line ends within this many character widths of the right margin; a paragraph's
# first line starts at least this far right of the left margin (the usual two-character indent).
WRAP_SLACK = 1.5
INDENT_MIN = 0.8
# Lines further apart than this many times the page's usual line pitch are separate paragraphs
# (documents set off by spacing rather than indents).
PARAGRAPH_GAP = 1.4
# Pieces whose tops differ by less than this share of a character height sit on one line.
SAME_ROW = 0.5
# A gap this many characters wide that no line crosses parts two columns, if each side has
# this many lines and is this many characters wide.
GUTTER = 1.0
COLUMN_MIN_LINES = 3
COLUMN_MIN_CHARS = 8
# Glyphs of fonts without a Unicode map come out as "(cid:123)": such a text layer is unusable.
CID_GLYPH = re.compile(r"\(cid:\d+\)")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")
_WIDE = re.compile(rf"[{CJK}\u3000-\u303f\uff00-\uffef“”‘’—…]")


class PdfTextError(ValueError):
    """The PDF has no usable text layer; the message says why."""


@dataclass
class Line:
    text: str
    x0: float
    x1: float
    top: float  # distance from the page's top edge, so sorting reads downwards
    char_w: float
    # The column the line is set in: a wrap runs to its right edge, an indent starts right of
    # its left edge.
    left: float = 0.0
    right: float = 0.0


@dataclass
class Page:
    lines: list[Line]  # as pdfminer found them; in reading order once laid out
    has_images: bool


def pdf_text(path: Path) -> str:
    pages = _read_pages(path)
    had_text = any(p.lines for p in pages)
    _drop_furniture(pages)  # first, or a page number beside the text would widen its column
    for page in pages:
        page.lines = _reading_order(page.lines)
    if not any(p.lines for p in pages):
        # A scan's only text may be the page numbers stamped on it.
        detail = ("its only text is page numbers and running heads" if had_text else
                  f"{len(pages)} page(s), {sum(p.has_images for p in pages)} with images only")
        raise PdfTextError(f"has no text layer (scanned?): {detail}; run OCR on it first, or "
                           "give the report as text")
    return _join_lines(pages)


def _read_pages(path: Path) -> list[Page]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTFigure, LTImage, LTTextContainer, LTTextLine
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psparser import PSException

    # Its warnings (a missing CropBox, an odd font) tell a user nothing they could act on.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)

    def lines_of(box) -> list[LTTextLine]:
        return [x for x in box if isinstance(x, LTTextLine)] if not isinstance(box, LTTextLine) \
            else [box]

    def has_image(item) -> bool:
        return isinstance(item, LTImage) or (isinstance(item, LTFigure)
                                             and any(has_image(x) for x in item))

    pages: list[Page] = []
    cid_glyphs = chars = 0
    try:
        for layout in extract_pages(str(path), laparams=LAParams()):
            lines: list[Line] = []
            images = False
            for item in layout:
                images = images or has_image(item)
                if not isinstance(item, LTTextContainer):
                    continue
                for tl in lines_of(item):
                    text = tl.get_text().strip()
                    cid_glyphs += len(CID_GLYPH.findall(text))
                    chars += len(text)
                    text = CID_GLYPH.sub("", text).strip()  # a stray unmapped glyph or two
                    if not text:
                        continue
                    lines.append(Line(text, tl.x0, tl.x1, layout.height - tl.y1,
                                      max(tl.height, 1.0)))
            pages.append(Page(lines, images))
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise PdfTextError(f"is password-protected or encrypted ({exc.__class__.__name__}); "
                           "save an unprotected copy") from None
    except (PDFSyntaxError, PSException) as exc:
        raise PdfTextError(f"is not a readable PDF ({exc})") from None
    except (KeyError, TypeError, AttributeError, IndexError, AssertionError, ValueError,
            OverflowError) as exc:
        # What pdfminer raises from deep inside on damaged files; one such file must not stop
        # the reading of all the others.
        raise PdfTextError(f"is a damaged PDF ({exc.__class__.__name__}: {exc})") from None
    if cid_glyphs and cid_glyphs * 8 > chars:  # a "(cid:N)" is about 8 characters
        raise PdfTextError("its fonts carry no Unicode map, so its text layer reads as "
                           "(cid:N) codes; export it again with fonts embedded, or OCR it")
    return pages


def _reading_order(pieces: list[Line]) -> list[Line]:
    """A page's lines in reading order, by recursive XY-cut: split at a gutter between columns
    where there is one, else at the widest gap between bands of lines, down to single lines.
    A column ends before the next begins, as a person reads a two-column page."""
    out: list[Line] = []
    if pieces:
        _cut(pieces, min(p.x0 for p in pieces), max(p.x1 for p in pieces), out)
    return out


def _cut(pieces: list[Line], left: float, right: float, out: list[Line]) -> None:
    columns = _columns(pieces)
    if len(columns) > 1:
        for col in columns:
            _cut(col, min(p.x0 for p in col), max(p.x1 for p in col), out)
        return
    bands = _bands(pieces)
    if len(bands) > 1:
        for band in bands:
            _cut(band, left, right, out)
        return
    for row in _rows(pieces):
        row.left, row.right = left, right
        out.append(row)


def _columns(pieces: list[Line]) -> list[list[Line]]:
    """Split at vertical gutters that no line crosses, if each side is a column of text (not
    a numbering beside its heading, nor the cells of a table)."""
    groups: list[list[Line]] = []
    reach = -math.inf
    for piece in sorted(pieces, key=lambda p: p.x0):
        if piece.x0 - reach >= GUTTER * piece.char_w:
            groups.append([])
        groups[-1].append(piece)
        reach = max(reach, piece.x1)
    if len(groups) > 1 and all(_is_column(g) for g in groups):
        return groups
    return [pieces]


def _is_column(pieces: list[Line]) -> bool:
    """Several lines, and wide enough for text: a table's narrow cells are read row by row."""
    width = max(p.x1 for p in pieces) - min(p.x0 for p in pieces)
    char_w = sorted(p.char_w for p in pieces)[len(pieces) // 2]
    return width >= COLUMN_MIN_CHARS * char_w and len(_rows(pieces)) >= COLUMN_MIN_LINES


def _bands(pieces: list[Line]) -> list[list[Line]]:
    """Split at the widest horizontal gap(s) that no line crosses."""
    ordered = sorted(pieces, key=lambda p: p.top)
    gaps: list[tuple[float, int]] = []
    reach = -math.inf
    for i, piece in enumerate(ordered):
        if i and piece.top > reach:
            gaps.append((piece.top - reach, i))
        reach = max(reach, piece.top + piece.char_w)
    if not gaps:
        return [pieces]
    widest = max(g for g, _ in gaps)
    cuts = [i for g, i in gaps if g >= widest - 0.5]  # equal gaps at once, to stay shallow
    return [ordered[a:b] for a, b in zip([0, *cuts], [*cuts, len(ordered)], strict=True)]


def _rows(pieces: list[Line]) -> list[Line]:
    """Pieces of text on one baseline (a numbering and its heading, the halves of a widely
    spaced line) become one line, left to right; lines go top to bottom."""
    rows: list[list[Line]] = []
    for piece in sorted(pieces, key=lambda p: p.top):
        if rows and abs(piece.top - rows[-1][0].top) <= SAME_ROW * min(piece.char_w,
                                                                        rows[-1][0].char_w):
            rows[-1].append(piece)
        else:
            rows.append([piece])
    merged = []
    for row in rows:
        row.sort(key=lambda p: p.x0)
        text = row[0].text
        for before, piece in zip(row, row[1:], strict=False):
            wide_gap = piece.x0 - before.x1 >= 0.5 * piece.char_w
            text += (" " if wide_gap else _glue(text, piece.text)) + piece.text
        merged.append(Line(text, row[0].x0, max(p.x1 for p in row), min(p.top for p in row),
                           max(p.char_w for p in row)))
    return merged


def _key(text: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", text))


def _drop_furniture(pages: list[Page]) -> None:
    """Remove page numbers and running heads/feet: short lines at a page's top or bottom edge
    that recur at the same height, with only their digits changing, on most pages."""
    by_height = [sorted(page.lines, key=lambda line: line.top) for page in pages]
    edges = [lines[:EDGE_LINES] + lines[-EDGE_LINES:] for lines in by_height]
    tops: dict[str, list[float]] = defaultdict(list)
    for edge in edges:
        for line in {id(x): x for x in edge}.values():
            if len(line.text) <= RUNNING_MAX_CHARS:
                tops[_key(line.text)].append(line.top)
    needed = max(2, math.ceil(RUNNING_SHARE * len(pages)))

    def running(line: Line) -> bool:
        if len(line.text) > RUNNING_MAX_CHARS:
            return False
        at = tops[_key(line.text)]
        # Body text that happens to repeat lands at other heights; furniture does not move.
        return sum(abs(t - line.top) <= line.char_w for t in at) >= needed

    for page, edge in zip(pages, edges, strict=True):
        drop = {id(line) for line in edge
                if PAGE_NUMBER.match(line.text) or running(line)}
        page.lines = [line for line in page.lines if id(line) not in drop]


def _join_lines(pages: list[Page]) -> str:
    """One line per paragraph: a line that runs to its column's right edge, followed by one
    that is neither indented nor set off by extra space, is a wrap, and is joined without a
    break (and with no space between Chinese characters); also across columns and pages."""
    out: list[str] = []
    prev: Line | None = None
    for page in pages:
        pitch = _pitch(page.lines)
        for i, line in enumerate(page.lines):
            above = page.lines[i - 1] if i else None
            indented = line.x0 - line.left >= INDENT_MIN * line.char_w
            spaced = above is not None and above.left == line.left \
                and line.top - above.top > PARAGRAPH_GAP * pitch
            if prev is not None and not indented and not spaced \
                    and prev.right - prev.x1 <= WRAP_SLACK * prev.char_w:
                out[-1] += _glue(out[-1], line.text) + line.text
            else:
                out.append(line.text)
            prev = line
    return "\n".join(out) + "\n"


def _pitch(lines: list[Line]) -> float:
    """The usual distance from one line to the next in a column (infinite with one line)."""
    steps = sorted(b.top - a.top for a, b in zip(lines, lines[1:], strict=False)
                   if a.left == b.left and b.top > a.top)
    return steps[len(steps) // 2] if steps else math.inf


def _glue(before: str, after: str) -> str:
    """Nothing between wide (CJK) text; a space only where two Latin words or numbers meet."""
    a, b = before[-1:], after[:1]
    if _WIDE.match(a) or _WIDE.match(b) or before.endswith("-"):
        return ""
    return " " if _ASCII_WORD.match(a) and _ASCII_WORD.match(b) else ""
