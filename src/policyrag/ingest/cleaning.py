"""Clean raw report text: strip newspaper furniture and glued pinyin, normalise width and spaces.

The cleaned text keeps the report's own script (simplified or traditional); it is what users
see and what every offset points into.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ"
# Neutral-tone syllables carry no tone mark, so they are named.
_NEUTRAL = "de|le|ma|me|ne|ba|la|zi|men|zhe|guo|li|tou|shang|xia|men"

# A pinyin reading in brackets glued after a character: 產(chǎn) -> 產
PINYIN = re.compile(
    rf"(?<=[{CJK}])\((?:[a-z{_TONED}]*[{_TONED}][a-z{_TONED}]*|{_NEUTRAL})\)"
)
PAGE_BREAK = re.compile(r"\((?:下转|上接|接|转|紧接|下轉|上接|轉|緊接)第?\s*[\d一二三四五六七八九十]+\s*版\)")
SHARE_LINE = re.compile(r"^\s*(?:分享到|分享至|分享)\s*[:：].*$", re.M)
REPOST_LINE = re.compile(r"^\s*本文(?:转|轉)自.*$", re.M)
BYLINE_LINE = re.compile(
    r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*)?"
    r"(?:来源|來源|编辑|編輯|责任编辑|責任編輯|责编|記者|记者|作者|通讯员|通訊員|摄影|攝影|校对|校對"
    r"|审核|審核)\s*[:：].{0,80}$",
    re.M,
)
TIMESTAMP_LINE = re.compile(r"^\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$",
                            re.M)
LEAD_BYLINE = re.compile(r"^[ \t]*(?:本报讯|本報訊|[^\s,。]{1,8}网讯|[^\s,。]{1,8}網訊)(?:\([^)]{0,40}\))?\s*",
                         re.M)
ATTENDEES = re.compile(r"^[^\n]*(?:参加|出席|列席|參加)(?:会议|會議)[。.]?\s*$", re.M)


def normalise_width(text: str) -> str:
    """NFKC folds full-width letters, digits and brackets to half-width, as the seeds use."""
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_pinyin(text: str) -> str:
    return PINYIN.sub("", text)


def strip_page_breaks(text: str) -> str:
    return PAGE_BREAK.sub("", text)


def strip_share_and_repost(text: str) -> str:
    return REPOST_LINE.sub("", SHARE_LINE.sub("", text))


def strip_bylines(text: str) -> str:
    text = BYLINE_LINE.sub("", text)
    text = TIMESTAMP_LINE.sub("", text)
    return LEAD_BYLINE.sub("", text)


def strip_attendee_lists(text: str) -> str:
    """Drop long roll-calls of who attended; short ones ("市领导李锋、张赟等出席会议") stay."""
    return ATTENDEES.sub(lambda m: "" if m.group(0).count("、") + m.group(0).count(";") >= 5
                         else m.group(0), text)


def strip_control_chars(text: str) -> str:
    # Block by block: one list of every character of a 5 MB report would take ~150 MB.
    step = 1 << 16
    return "".join("".join(ch for ch in text[i:i + step]
                           if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
                   for i in range(0, len(text), step))


def tidy_whitespace(text: str) -> str:
    text = re.sub(r"[ \t\u3000]+", " ", text)
    # Spaces between two Chinese characters are layout (e.g. 周 益), not word breaks.
    text = re.sub(rf"(?<=[{CJK}]) (?=[{CJK}])", "", text)
    text = re.sub(rf"(?<=[。,;:!?、“”]) (?=[{CJK}“])|(?<=[{CJK}]) (?=[。,;:!?、“”])", "", text)
    lines = (line.strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


RULES: list[Callable[[str], str]] = [
    normalise_width,
    strip_control_chars,
    strip_pinyin,
    strip_page_breaks,
    strip_share_and_repost,
    strip_bylines,
    strip_attendee_lists,
    tidy_whitespace,
]


def clean(raw: str) -> str:
    text = raw
    for rule in RULES:
        text = rule(text)
    return text
