"""Checks one generated sentence against the numbered points it cites, before anyone sees it.

A sentence is kept only when:
- it carries markers, and every marker names a point that was given;
- its numbers, and the place and person names it writes, occur in the points it cites (or, for
  places, are the locality being answered for or named in the question);
- its words are supported by those points: for Chinese, most of its words (jieba tokens)
  occur in them; for English, the policy terms it uses (through the bilingual glossary) mostly do, and
  any pinyin name does;
- it is written in the asker's language, is not the prompt echoed, and is not a point copied
  out whole (the extractive answer already shows the points).

The reasons are short phrases, counted per answer, never shown with the rejected text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from policyrag.index.lexical import GLOSSARY
from policyrag.script import to_simplified

MARKER = re.compile(r"\[(\d{1,2})\]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_CN_NUMERAL = re.compile(r"[〇零一二三四五六七八九十百千万亿两]{2,}")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")

MIN_TOKEN_SUPPORT = 0.6     # a Chinese sentence's words supported by its points (see below)
MIN_CITED_TOKENS = 2        # …of which at least this many found in the points themselves
MIN_TERM_SUPPORT = 0.6      # share of an English sentence's glossary terms found in its points
COPY_SHARE = 0.85           # a sentence this much one run of a point's text is a copy…
COPY_MIN_CHARS = 30         # …if that run is this long (a short phrase may well be quoted)
QUOTED_RUN = 6              # characters in a row shared with the question: the question's words

ECHO_LABELS = ("问题", "地区", "要点", "Question", "Locality", "Points")
# English words that look like pinyin but are not names from the reports.
_NOT_NAMES = frozenset(
    "a an as he hen she shou china chinese party the in on i it its is "  # noqa: SIM905
    "ai an ang ao e en er o ou ma me na ne "
    # English words a translation may open with that read as pinyin (一是 → "One is …")
    "one long man can fan pan ran tan men sun hang bang gang lie die tie pin bin".split())
# Joining words a paraphrase needs that say nothing of its own.
_CONNECTIVES = frozenset(
    "通过 同时 以及 并且 此外 不断 积极 大力 致力 致力于 旨在 方面 主要 包括 进行 实施 开展 "  # noqa: SIM905
    "注重 重点 持续 努力 其中 相关 有效 各类".split())
# Words jieba tags as places that name none in particular (示范城市, 全省大局).
_NOT_PLACES = frozenset("城市 全国 全省 全市 全区 全县 城乡 乡村 农村 山区 沿海 本地 当地".split())  # noqa: SIM905
# The search glossary, plus a few words whose Chinese a translation must not have invented and a
# few more spellings of its terms (民办 is private too).
_TERMS = {**GLOSSARY, **{en: f"{GLOSSARY.get(en, '')} {zh}".strip() for en, zh in {
    "private": "民办", "party": "党",
    "national": "国家 全国", "township": "乡镇 镇", "village": "村", "enterprise": "企业",
    "farmer": "农民 农户", "rural": "乡村 农村", "tax": "税", "loan": "贷 融资",
    "foreign": "外资 外商 外贸 国际 境外", "airport": "机场", "railway": "铁路",
}.items()}}
_ACTORS = {"central": "中央 党中央", "state council": "国务院", "provinc": "省",
           "ministr": "部", "national people": "全国人大 人大"}
# Cardinals only: "the second half of the year" (下半年) names no number.
_NUMBER_WORDS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "  # noqa: SIM905
    "fifteen sixteen seventeen eighteen nineteen twenty".split()) if n} | {
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "thousand": 1000}


@dataclass(frozen=True)
class Context:
    """What a sentence may draw on besides its cited points."""

    question: str = ""
    locality: str | None = None
    instructions: str = ""   # the system prompt: a sentence repeating it is an echo


def markers(sentence: str) -> list[int]:
    return [int(x) for x in MARKER.findall(sentence)]


ECHO_RUN_ZH = 8    # characters in a row shared with the instructions make an echo…
ECHO_RUN_EN = 30   # …or, in English, this many


def is_echo(text: str, system: str = "") -> bool:
    """The prompt's own labels at a line start, or a run of its instructions repeated."""
    if any(re.search(rf"(?m)^\s*{re.escape(label)}\s*[:：]", text) for label in ECHO_LABELS):
        return True
    if not system:
        return False
    plain = MARKER.sub("", text)
    run = SequenceMatcher(None, plain, system, autojunk=False).find_longest_match(
        0, len(plain), 0, len(system)).size
    return run >= (ECHO_RUN_ZH if _CJK.search(plain) else ECHO_RUN_EN)


def check_sentence(sentence: str, points: list[str], lang: str,
                   context: Context = Context()) -> str | None:
    """Why `sentence` may not be shown (a short reason), or None when it passes.

    `points` are the texts of the numbered points, [1] first, in simplified Chinese.
    """
    numbers = markers(sentence)
    if not numbers:
        return "no citation marker"
    if any(not 1 <= n <= len(points) for n in numbers):
        return "cites a point that does not exist"
    if is_echo(sentence, context.instructions):
        return "echoes the prompt"
    cited = "".join(points[n - 1] for n in dict.fromkeys(numbers))
    body = MARKER.sub("", sentence).strip()
    if lang == "en":
        return _check_english(body, cited, context)
    return _check_chinese(to_simplified(body), cited, context, "".join(points))


# ---------------------------------------------------------------- Chinese


def _check_chinese(body: str, cited: str, context: Context, shown: str = "") -> str | None:
    letters = len(_LATIN_WORD.findall(body))
    han = len(_CJK.findall(body))
    if han < 4 or letters > max(1, han // 10):
        return "not written in Chinese"
    given = to_simplified(context.question + (context.locality or ""))
    if _copied(body, cited, to_simplified(context.question)):
        return "copies a point word for word"
    # A word of the example that none of the points given has leaked from the example.
    if bad := _from_instructions(body, shown or cited, given, context.instructions):
        return f"echoes the prompt ({bad})"
    if bad := _unsupported_numbers(body, cited):
        return f"number not in its points ({bad})"
    if bad := _unsupported_places(body, cited, given, context.locality):
        return f"place not in its points ({bad})"
    if bad := _unsupported_people(body, cited):
        return f"name not in its points ({bad})"
    support, found = _token_support(body, cited, given)
    if support < MIN_TOKEN_SUPPORT or found < MIN_CITED_TOKENS:
        return f"words not supported by its points ({support:.0%})"
    return None


def _from_instructions(body: str, cited: str, given: str, instructions: str) -> str | None:
    """A word of the instructions' example (乡村道路) that the points lack: it leaked."""
    from policyrag.index.lexical import tokenize

    example = instructions[instructions.find("示例"):] if "示例" in instructions else ""
    for t in tokenize(body):
        if len(t) >= 2 and _CJK.search(t) and t in example and t not in cited and t not in given:
            return t
    return None


def _token_support(body: str, cited: str, given: str) -> tuple[float, int]:
    """(support, tokens found in the points): a word of the sentence counts 1 when the cited
    points (or the question) contain it, else half the share of its characters they contain, so
    a paraphrase (以民为本 for 兴盛于民) earns a little and an invented term (减免税收) nothing."""
    from policyrag.index.lexical import tokenize

    tokens = [t for t in tokenize(body) if _CJK.search(t) and len(t) >= 2
              and t not in _CONNECTIVES]
    if not tokens:
        return 0.0, 0
    score, found = 0.0, 0
    for t in tokens:
        if t in cited:
            score, found = score + 1, found + 1
        elif t in given:
            score += 1
        else:
            score += 0.5 * sum(ch in cited for ch in t) / len(t)
    return score / len(tokens), found


def _copied(body: str, cited: str, question: str = "") -> bool:
    """Most of the sentence is one run of a point's text. Phrases the question quotes from the
    point (“哪里提出了…的‘三个工作导向’?”) do not count: an answer has to name them."""
    plain = re.sub(r"\W", "", body)
    asked = re.sub(r"\W", "", question)
    while asked and (m := SequenceMatcher(None, plain, asked, autojunk=False).find_longest_match(
            0, len(plain), 0, len(asked))).size >= QUOTED_RUN:
        plain = plain[:m.a] + plain[m.a + m.size:]
        asked = asked[:m.b] + asked[m.b + m.size:]
    if len(plain) < COPY_MIN_CHARS:
        return False
    source = re.sub(r"\W", "", cited)
    match = SequenceMatcher(None, plain, source, autojunk=False).find_longest_match(
        0, len(plain), 0, len(source))
    return match.size >= max(COPY_SHARE * len(plain), COPY_MIN_CHARS)


def _cn_to_int(s: str) -> int | None:
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
    if all(c in digits for c in s):  # 二〇二三
        return int("".join(str(digits[c]) for c in s))
    total, section, current = 0, 0, 0
    units = {"十": 10, "百": 100, "千": 1000}
    for c in s:
        if c in digits:
            current = digits[c]
        elif c in units:
            section += (current or 1) * units[c]
            current = 0
        elif c in ("万", "亿"):
            total += (section + current) * (10_000 if c == "万" else 100_000_000)
            section, current = 0, 0
    return total + section + current


def _numbers_in(text: str) -> set[str]:
    """Every number a text states, as digits (Chinese numerals converted too)."""
    text = to_simplified(text).translate(_FULLWIDTH)
    found = {n.lstrip("0") or "0" for n in _DIGITS.findall(text)}
    for run in _CN_NUMERAL.findall(text):
        found.add(run)
        value = _cn_to_int(run)
        if value is not None:
            found.add(str(value))
    # “十四五” also reads as 14 and 5 when an English sentence says "14th Five-Year Plan".
    for run in re.findall(r"[一二三四五六七八九十]+", text):
        value = _cn_to_int(run)
        if value is not None:
            found.add(str(value))
    return found


_FULLWIDTH = str.maketrans("０１２３４５６７８９．％", "0123456789.%")


def _unsupported_numbers(body: str, cited: str) -> str | None:
    allowed = _numbers_in(cited)
    text = body.translate(_FULLWIDTH)
    for n in _DIGITS.findall(text):
        if (n.lstrip("0") or "0") not in allowed:
            return n
    for run in _CN_NUMERAL.findall(text):
        if run not in cited:
            return run
    return None


def _unsupported_places(body: str, cited: str, given: str, locality: str | None) -> str | None:
    from policyrag.ingest.gazetteer import same_place, short_name, spelled_in, spelled_words

    spelled = spelled_words(given)  # an English question names Luqiao
    for name in [*_place_names(given), *([locality] if locality else [])]:
        # A name cut short (桥区 for 路桥区) hides which place is meant.
        if len(name) >= 3 and name[1:] in body and name not in body \
                and short_name(name) not in body:
            return name[1:]
    for surface in _place_names(body):
        if surface in cited or surface in given or (locality and same_place(surface, locality)):
            continue
        if spelled_in(short_name(surface), spelled):
            continue
        return surface
    return None


def _unsupported_people(body: str, cited: str) -> str | None:
    return next((word for word in _people(body) if word not in cited), None)


def _people(body: str) -> list[str]:
    """Words jieba tags as person names that start with a common surname (it also tags words
    such as 智慧 and 福祉 as names)."""
    return [w for w in _tagged(body, ("nr", "nrfg", "nrt")) if w[0] in _SURNAMES]


# The most common Chinese surnames (about 85 % of people).
_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严"
    "覃武戴莫孔向汤柏舒应葛章鲁詹裘楼虞")


def _place_names(body: str) -> list[str]:
    """Places the sentence names: what jieba tags as a place, and full names of divisions from
    the gazetteer (丽水市). A bare short name that is also a common word (合作, 和平) is left to
    jieba, which reads it as the word."""
    from policyrag.ingest.gazetteer import find_places

    full = [body[m.start:m.end] for m in find_places(body)
            if m.end - m.start >= 3 and body[m.end - 1] in "市区县省"]
    tagged = [w for w in _tagged(body, ("ns",)) if w not in _NOT_PLACES]
    return list(dict.fromkeys(tagged + full))


@lru_cache(maxsize=512)
def _tags(text: str) -> tuple[tuple[str, str], ...]:
    import logging

    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(logging.WARNING)
    return tuple((w.word, w.flag) for w in pseg.lcut(text))


def _tagged(text: str, flags: tuple[str, ...]) -> list[str]:
    return [word for word, flag in _tags(text) if flag in flags and len(word) >= 2]


# ---------------------------------------------------------------- English


def check_translation(english: str, source: str, points: list[str],
                      context: Context = Context()) -> str | None:
    """Why the English rendering of a checked Chinese sentence `source` may not be shown: it
    must keep the source's markers (valid ones), add no number or pinyin name that the source
    and its points lack, use policy terms they support, and hold no Chinese."""
    numbers = markers(english)
    if not numbers or any(not 1 <= n <= len(points) for n in numbers):
        return "translation lost its markers"
    source = to_simplified(source)
    body = MARKER.sub("", english).strip()
    spelled = re.sub(r"[^a-z]", "", body.lower())
    found = source_places(source)
    for place in found:
        if any(place != other and place in other for other in found):
            continue  # 开区, which jieba tags inside 丽水经开区
        if not any(r in spelled for r in place_spellings(place)) \
                and place_english(place).replace(" ", "").lower() not in spelled:
            return f"translation lost a place name ({place})"
    cited = source + "".join(points[n - 1] for n in dict.fromkeys(numbers))
    # "Lishui City", "Economic Development Zone": a place's name, checked above, not terms
    # ("city", "economic", "develop") that the points must support.
    body = _DIVISION.sub(r"\1", body)
    return _check_english(body, cited, context, need_term=False)


_DIVISION = re.compile(r"\b([A-Z][a-z]+) (?:Economic Development Zone|Development Zone|City|"
                       r"District|County)\b")


def source_places(text: str) -> list[str]:
    """The place names a Chinese sentence writes (路桥, 丽水经开区)."""
    return _place_names(to_simplified(text))


def source_people(text: str) -> list[str]:
    """The person names a Chinese sentence writes (吴舜泽), as the name check finds them."""
    return list(dict.fromkeys(w for w in _people(to_simplified(text)) if 2 <= len(w) <= 4))


def person_english(name: str) -> str:
    """A Chinese name in pinyin, surname first: 吴舜泽 → Wu Shunze."""
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(name, style=Style.NORMAL)
    return f"{syllables[0].capitalize()} {''.join(syllables[1:]).capitalize()}"


def place_english(place: str) -> str:
    """How an English sentence names a division: Luqiao District, Lishui Economic Development
    Zone (the translation prompt gives the model these)."""
    from pypinyin import Style, lazy_pinyin

    def spell(name: str) -> str:
        # In a place name 都 is a capital, du (莲都 Liandu, 成都); pypinyin reads it dou.
        return "".join("du" if ch == "都" else lazy_pinyin(ch, style=Style.NORMAL)[0]
                       for ch in name).capitalize()

    for suffix, word in (("经开区", "Economic Development Zone"), ("区", "District"),
                         ("市", "City"), ("县", "County")):
        if place.endswith(suffix) and len(place) > len(suffix) + 1:
            return f"{spell(place[:-len(suffix)])} {word}"
    return spell(place)


def place_spellings(place: str) -> list[str]:
    """Pinyin spellings of a place, full and short (luqiaoqu, luqiao), longest first."""
    from policyrag.ingest.gazetteer import romanisations, short_name

    return sorted({r for name in (place, short_name(place)) for r in romanisations(name)
                   if len(r) >= 4}, key=len, reverse=True)


def _check_english(body: str, cited: str, context: Context, need_term: bool = True
                   ) -> str | None:
    if _CJK.search(body):
        return "not written in English (Chinese words inside)"
    words = _LATIN_WORD.findall(body)
    if len(words) < 4:
        return "too short to check"
    allowed = _numbers_in(cited)
    for n in _DIGITS.findall(body):
        if (n.lstrip("0") or "0") not in allowed:
            return f"number not in its points ({n})"
    for w in words:
        value = _NUMBER_WORDS.get(w.lower())
        if value is not None and str(value) not in allowed and value > 1:
            return f"number not in its points ({w})"
    given = to_simplified(context.question + (context.locality or ""))
    spelled = _pinyin_words(cited + given)
    for w in words:
        # Capitalised pinyin-looking words are names (Luqiao, Xu Guangwen), first word too.
        if not w[0].isupper() or w.lower() in _NOT_NAMES or not _is_pinyin(w):
            continue
        if w.lower() not in spelled:
            return f"name not in its points ({w})"
    lowered = body.lower()
    for en, zh in _ACTORS.items():
        # Who acted is a fact like a place: the province is not the Party centre.
        if re.search(rf"\b{en}", lowered) and not any(z in cited + given for z in zh.split()):
            return f"actor not in its points ({en})"
    terms = [zh.split() for en, zh in _TERMS.items() if re.search(rf"\b{re.escape(en)}", lowered)]
    supported = [t for t in terms if any(z in cited or z in given for z in t)]
    from_points = [t for t in terms if any(z in cited for z in t)]
    if need_term and not from_points:
        return "no term it uses could be found in its points"
    if terms and len(supported) / len(terms) < MIN_TERM_SUPPORT:
        return f"terms not supported by its points ({len(supported)} of {len(terms)})"
    return None


@lru_cache(maxsize=256)
def _pinyin_words(text: str) -> frozenset[str]:
    """Every run of one to four whole syllables of the text's pinyin (luqiao, guangwen): a name
    must match whole syllables, not letters that happen to meet across them (Liandou is not
    in …lian dou…, it is not in lian du either)."""
    from pypinyin import Style, lazy_pinyin

    # Letters already in the text (an English question naming Luqiao) count as syllables too.
    syllables = [w.lower() for s in lazy_pinyin(text, style=Style.NORMAL)
                 for w in re.findall(r"[A-Za-z]+", s)]
    runs = {"".join(syllables[i:j]) for i in range(len(syllables))
            for j in range(i + 1, min(i + 5, len(syllables) + 1))}
    # Place names in every reading (莲都: liandu as well as pypinyin's liandou).
    return frozenset(runs.union(*(place_spellings(p) for p in _place_names(to_simplified(text)))))


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    from pypinyin import Style, lazy_pinyin

    chars = "".join(chr(c) for c in range(0x4E00, 0x9FA6))
    return frozenset(lazy_pinyin(chars, style=Style.NORMAL))


def _is_pinyin(word: str) -> bool:
    """Whether a word splits wholly into pinyin syllables (Luqiao, Guangwen; not Plan)."""
    w = word.lower()
    if len(w) < 3:
        return False
    syllables = _syllables()
    ok = [True] + [False] * len(w)
    for end in range(1, len(w) + 1):
        ok[end] = any(ok[start] and w[start:end] in syllables
                      for start in range(max(0, end - 6), end))
    return ok[-1]
