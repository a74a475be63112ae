"""English questions as Chinese search terms, written by the generator and cached on disk.

The reports are Chinese; an English question reaches BM25 only through a small glossary. The
packaged generator knows far more words (and place names: Luqiao is 路桥), so it is asked once
per question for a few simplified-Chinese search terms. The answer is cached in
`cache_dir()/query-translations.json`, keyed by the sha256 of the model's name and the question,
so a repeated question costs nothing and never loads the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from policyrag.answer import generate
from policyrag.cachefiles import locked
from policyrag.config import cache_dir
from policyrag.script import is_english

CACHE_FILE = "query-translations.json"
MAX_TOKENS = 40
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Three worked examples in the reports' own wording (营商环境, 全会, 招商引资, not 商业环境 or
# 公司): at scale, English recall@5 went 0.857 -> 0.873 on the development set and 0.76 -> 0.84 on
# the second held-out set, and no set lost (README). The examples are general policy phrases,
# not questions of any set. The prompt is part of the cache key, so a new one asks again.
_SYSTEM = ("Translate the user's question into simplified Chinese, in the wording of Chinese "
           "government reports. Output only the translation.\n"
           "Examples:\n"
           "What will the city do to improve the business environment for private firms? => "
           "市里将如何为民营企业优化营商环境？\n"
           "What did the plenary session ask officials to do about common prosperity? => "
           "全会要求干部在共同富裕方面做什么？\n"
           "How will the county attract investment and push major projects forward? => "
           "县里将如何招商引资、推进重大项目？")
# Chinese characters, digits and Chinese punctuation only: no English left in the terms.
_GRAMMAR = r"root ::= [\u4e00-\u9fff0-9，、？]{2,40}"
# The model mangles place names, even ones given in characters (路桥 came back as 桥梁), so they
# are taken out before it sees the question and put back in front of its translation.
_STAND_IN = "the city"
_STAND_IN_ZH = re.compile(r"该市|这个城市|这座城市|该城市|那个城市|城市的|^城市|[？?]")


def translate_query(question: str, places: Iterable[str] = ()) -> str | None:
    """Simplified-Chinese search terms for an English `question` ("路桥 民间投资 吸引"), or None
    when it is not English, no generator is available, or the model gave nothing usable.

    `places` (an index's localities, e.g. 路桥区) are written in characters before the model
    sees the question: a 1.5B model guesses wrong characters for Luqiao (乐丘) or Liandu."""
    question = " ".join((question or "").split())
    if not question or not is_english(question):
        return None
    question, named = _without_places(question, places)
    model = generate.generator_id()
    if model is None:
        return None
    key = hashlib.sha256(f"{model}\n{question}\n{_SYSTEM}".encode()).hexdigest()
    cached = _read(_cache_path())
    if key in cached:
        return cached[key] or None
    try:
        generator = generate.load_generator("auto")
        kwargs = {"grammar": _GRAMMAR} if getattr(generator, "supports_grammar", False) else {}
        text = generator.generate(question, system=_SYSTEM, max_tokens=MAX_TOKENS,
                                  temperature=0.0, **kwargs)
    except generate.GenerationUnavailable:
        return None
    words = [_STAND_IN_ZH.sub("", t) for t in text.split() if _CJK.search(t)]
    terms = " ".join(dict.fromkeys(w for w in [*named, *words] if w))
    _remember(key, terms)
    return terms or None


def with_place_characters(question: str, places: Iterable[str]) -> str:
    """Romanised names of `places` in an English question written in characters, in full
    (Luqiao → 路桥区), so a model answering in Chinese neither guesses them (it wrote 鲁市) nor
    reads 路桥 as "road bridge"."""
    from policyrag.ingest.gazetteer import romanisations, short_name

    for place in places:
        for spelling in sorted(romanisations(short_name(place)), key=len, reverse=True):
            if len(spelling) >= 4:
                question = re.sub(rf"\b{spelling}\b", place, question, flags=re.I)
    return question


def _without_places(question: str, places: Iterable[str]) -> tuple[str, list[str]]:
    """The question with the names of `places` (romanised or in characters) replaced by a
    stand-in, and the names found, in characters."""
    from policyrag.ingest.gazetteer import english_zone, romanisations, short_name

    places, named = list(places), []
    for place in places:  # a zone first: "Lishui Development Zone" is not Lishui
        zone = english_zone(place)
        if zone is not None and zone.search(question):
            question = re.sub(r"\bthe\s+the zone", "the zone", zone.sub(" the zone", question),
                              flags=re.I)
            named.append(place)
    for place in places:
        short = short_name(place)
        spellings = [place, short] + sorted((r for r in romanisations(short) if len(r) >= 4),
                                            key=len, reverse=True)
        for spelling in spellings:
            pattern = rf"\b{re.escape(spelling)}\b" if spelling.isascii() else re.escape(spelling)
            question, n = re.subn(pattern, _STAND_IN, question, flags=re.I)
            if n and short not in named:
                named.append(short)
    return question, named


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


# The cache as last read, with the file's (inode, size, mtime): one `ask` looks a question up
# two or three times, and a UI process many times; another process's write changes the stamp.
_MEMO: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}


def _read(path: Path) -> dict[str, str]:
    try:
        st = path.stat()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if (memo := _MEMO.get(path)) and memo[0] == stamp:
            return dict(memo[1])
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    data = data if isinstance(data, dict) else {}
    _MEMO[path] = (stamp, data)
    return dict(data)


def _remember(key: str, terms: str) -> None:
    """Best effort: a read-only cache folder only costs the next process a model call."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path):
            data = _read(path)
            data[key] = terms
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=0), "utf-8")
            os.replace(tmp, path)
    except OSError:
        pass


