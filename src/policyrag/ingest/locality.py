"""Which government a text speaks for: its issuing body, not the place it mentions most.

Evidence, strongest first: a body named with its place (中共青田县委, 青田县人民政府,
北京市第十三届人民代表大会) in the title, opening or signature; the place in the title; the
words by which a text speaks of its own level (我县, 全市, 本省); central bodies as the subject
(国务院, 中共中央政治局) for the national level. A news story is placed only by its headline
or its opening sentence; a place it mentions in passing places nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from policyrag.ingest.doctype import lead_sentence
from policyrag.ingest.gazetteer import MUNICIPALITIES, NATIONAL, Mention, Place, find_places

# How a text speaks of its own level of government.
SELF_CUES = {
    "province": ("全省", "我省", "本省"),
    "city": ("全市", "我市", "本市"),
    "county": ("全县", "我县", "本县", "全区", "我区", "本区"),
    "zone": ("党工委", "管委会"),
}
# A headline that opens with its own body: 区委十四届十一次全会, 县人民政府工作报告.
_TITLE_BODY = re.compile(r"^(?:中共)?(省|市|县|区)(?:委|政府|人民政府|人大|政协)")
# Words after a place that make it a body's name: 青田县委, 福建省人民政府, 丽水经开区党工委.
_BODY_AFTER = re.compile(
    r"(?:委员会|党委|委|人民政府|政府|人大常委会|人大|人民代表大会|第[一二三四五六七八九十]+届"
    r"人民代表大会|政协|党工委|管委会)")
# The central party and state as a text's subject.
CENTRAL = re.compile(
    r"国务院|中共中央|党中央|中央军委|中央委员会|全国人大|全国人民代表大会|全国政协|全国委员会|"
    r"全国代表大会|"
    r"中央经济工作会议|中央[^,，。]{0,10}?(?:会议|委员会|办公厅|领导小组|常委会|纪委|部门)|中央纪委|"
    r"国家(?:主席|发展改革委)|"
    # Ministries and commissions of the State Council, which sign without 国家 (but 俄罗斯国防部
    # is not one of them).
    r"(?:(?<![\u4e00-\u9fff])|(?<=中国))(?:外交部|国防部|教育部|科技部|工业和信息化部|公安部|"
    r"民政部|司法部|财政部|人力资源社会保障部|自然资源部|生态环境部|住房城乡建设部|交通运输部|水利部|农业农村部|农业部|商务部|文化和旅游部|"
    r"应急管理部|退役军人事务部|审计署|海关总署|税务总局|市场监管总局|国资委|证监会|银保监会|"
    r"中国人民银行)|"
    r"国家[^,，。]{1,8}?(?:部|局|委|署|总局)|党和国家领导人|习近平|李克强|李强|温家宝|人民日报|"
    r"全军|解放军|中国空军|中国海军|国家副主席|"
    # Members of the Politburo Standing Committee since 2012, and the First Lady, whose
    # appearances are national news wherever they take place.
    r"张德江|俞正声|刘云山|王岐山|张高丽|栗战书|汪洋|王沪宁|赵乐际|韩正|蔡奇|丁薛祥|李希|彭丽媛")
# The whole country as the subject, only where a sentence opens with it (眼下，全国“三夏”…).
_COUNTRY = re.compile(r"我国|全国")
_WEIGHT = {"title": 5, "body_title": 12, "body_head": 6, "body_tail": 6, "body": 2,
           "head": 2, "tail": 1, "mention": 1}
_HEAD, _TAIL = 300, 300


@dataclass
class Evidence:
    place: Place
    score: float = 0.0
    strong: bool = False  # a body, the title or the opening names it


# A place name that begins the name of something else (上海合作组织, 北京大学, 北京时间), or
# one of several (四川等地).
_NOT_A_PLACE_AFTER = re.compile(
    r"合作组织|大学|学院|银行|集团|公司|证券交易所|交易所|电视台|日报|晚报|论坛|峰会|公约|宣言|共识|"
    r"精神|经验|模式|队|号|时间|等")


# Where something took place (会议在北京举行, 在青岛开幕) is not who acted.
_VENUE_AFTER = re.compile(r"[^,，。;；]{0,12}?(?:举行|召开|开幕|闭幕|启动|启用|会见|会谈|举办|出席|主持|亮相)")


def _is_venue(m: Mention, text: str) -> bool:
    return m.start > 0 and text[m.start - 1] in "在于" and bool(_VENUE_AFTER.match(text, m.end))


def _qualified(mentions: list[Mention], text: str) -> list[Mention]:
    """Short county names are often words (富裕, 前进, 南海): trust them only beside their
    city or province, or written in full. Names of organisations after a place, and the
    venue of an event, are no place of the text's own."""
    mentions = [m for m in mentions
                if not _NOT_A_PLACE_AFTER.match(text, m.end) and not _is_venue(m, text)
                and not _inside_word(m, text)]
    names = {m.place.name for m in mentions} | {m.place.short for m in mentions}
    keep = []
    for m in mentions:
        p = m.place
        full = text[m.start:m.end] == p.name
        if p.level != "county" or full or p.parent in names or p.province in names:
            keep.append(m)
    return _disambiguate(keep, names)


def _inside_word(m: Mention, text: str, margin: int = 6) -> bool:
    """A short name that is part of a longer word (长治 in 长治久安, 富裕 in 共同富裕)."""
    if text[m.start:m.end] == m.place.name:
        return False
    from policyrag.index.lexical import tokenize

    start = max(0, m.start - margin)
    pos = start
    for token in tokenize(text[start:m.end + margin]):
        found = text.find(token, pos)
        if found < 0:
            return False
        end = found + len(token)
        if found <= m.start and end >= m.end:
            if end - found == m.end - m.start:
                return False  # the token is the name itself
            # A longer token that is a place's name (长治市) is no word around the name.
            return not any(x.start == 0 and x.end == len(token) for x in find_places(token))
        pos = end
    return False


def _disambiguate(mentions: list[Mention], names: set[str]) -> list[Mention]:
    """One place per span: the one whose parent is named too, else the highest level."""
    by_span: dict[tuple[int, int], list[Mention]] = {}
    for m in mentions:
        by_span.setdefault((m.start, m.end), []).append(m)
    order = ("province", "city", "zone", "county")
    return [min(group, key=lambda m: (m.place.parent not in names and m.place.province not in names,
                                      order.index(m.place.level)))
            for group in by_span.values()]


def _evidence(text: str, title: str) -> dict[str, Evidence]:
    found: dict[str, Evidence] = {}

    def add(mentions: list[Mention], where: str, source: str) -> None:
        for m in mentions:
            ev = found.setdefault(m.place.name, Evidence(m.place))
            body = bool(_BODY_AFTER.match(source, m.end))
            kind = f"body_{where}" if body and where in {"title", "head", "tail"} else \
                ("body" if body else where)
            ev.score += _WEIGHT.get(kind, 1)
            ev.strong |= body or where in {"title", "head"}

    add(_qualified(find_places(title), title), "title", title)
    mentions = _qualified(find_places(text), text)
    tail_start = max(len(text) - _TAIL, _HEAD)
    add([m for m in mentions if m.start < _HEAD], "head", text)
    add([m for m in mentions if m.start >= tail_start], "tail", text)
    add([m for m in mentions if _HEAD <= m.start < tail_start], "mention", text)
    return found


def own_level(text: str, title: str) -> str | None:
    """The level a text speaks for, from how it names itself; None when it never does."""
    cues: Counter[str] = Counter()
    for level, words in SELF_CUES.items():
        # 资本市场, 全区域 are no self-reference.
        cues[level] = len(re.findall(rf"(?:{'|'.join(words)})(?![场域间])", text))
    if m := _TITLE_BODY.match(title) or _TITLE_BODY.match(text.lstrip()):
        cues[{"省": "province", "市": "city", "县": "county", "区": "county"}[m[1]]] += 10
    if not cues or cues.most_common(1)[0][1] == 0:
        return None
    level, count = cues.most_common(1)[0]
    # 党工委/管委会 name a zone's bodies; a zone still calls itself 全区.
    if cues["zone"] and cues["zone"] + cues["county"] >= count:
        return "zone"
    return level


def _autonomous_region(title: str) -> bool:
    return any(m.place.level == "province" and m.place.name.endswith("自治区")
               for m in find_places(title))


def _fits(place: Place, level: str) -> bool:
    # A municipality speaks of itself as 本市, though it is a province.
    return place.level == level or (level == "city" and place.name in MUNICIPALITIES)


def _central_subject(sentence: str, window: int = 30) -> bool:
    sentence = re.sub(r"^(?:\d{1,2}月\d{1,2}日[上下晚]?午?|当地时间[^,，]{0,12}|[^,，]{0,8}期间|"
                      r"眼下|近日|日前|今天|[^,，]{0,8}之际)[,，]?", "", sentence)
    return bool(CENTRAL.search(sentence[:window]) or _COUNTRY.search(sentence[:4]))


def issuing_place(text: str, title: str, doc_type: str) -> Place | None:
    """The place whose government speaks in the text; `text` and `title` are simplified."""
    if doc_type == "news":
        return _news_place(text, title)
    level = own_level(text, title)
    found = _evidence(text, title)
    if level == "county" and _autonomous_region(title):
        level = "province"  # an autonomous region (西藏自治区) calls itself 全区 too
    body = text.lstrip()
    # The headline is no sentence of the body, even when it has a comma in it.
    lead = lead_sentence(body[len(title):] if title and body.startswith(title) else body)
    # A central body as the subject outranks the city it met in (在北京召开); in the headline
    # (习近平主持召开中央…会议) it outranks how the text speaks of levels too.
    if _central_subject(title) or (level is None and _central_subject(lead)):
        return NATIONAL
    ranked = sorted(found.values(), key=lambda e: -e.score)
    if level is not None:
        fitting = [e for e in ranked if _fits(e.place, level) and (e.strong or e.score >= 2)]
        if fitting:
            return fitting[0].place
    strong = [e for e in ranked if e.strong]
    if strong:
        return strong[0].place
    if _central_subject(title) or _central_subject(lead):
        return NATIONAL
    return None


_ROUNDUP = re.compile(r"联播快讯|新闻摘要")
_TITLE_PREFIX = re.compile(r"^(?:【[^】]*】)?([^:：【】\s]{2,10})[:：]")


def _chain_end(mentions: list[Mention]) -> Place | None:
    """The most specific place when every mention lies on one line of descent, else None."""
    places = {m.place.name: m.place for m in mentions if m.place.level != "zone"}
    if not places:
        return None
    deepest = max(places.values(), key=lambda p: ("province", "city", "county").index(p.level))
    line = {deepest.name, deepest.parent, deepest.province}
    return deepest if set(places) <= line else None


def _places_in(text: str) -> list[Mention]:
    return _qualified(find_places(text), text)


def _news_place(text: str, title: str) -> Place | None:
    """A news story's place: its headline's 'X：', a central subject, or its one place."""
    if _ROUNDUP.search(title):
        return None
    headline = re.sub(r"[(（]新闻联播[^)）]*[)）]", "", title)
    if m := _TITLE_PREFIX.match(headline):
        place = _chain_end(_places_in(m[1]))
        if place is not None:
            return place
    lead = lead_sentence(text)
    # A series banner (【在习近平新时代中国特色社会主义思想指引下】) says nothing of who acts.
    if _central_subject(lead) or CENTRAL.search(re.sub(r"【[^】]*】", "", headline)):
        return NATIONAL
    for source in (headline, lead):
        place = _chain_end(_places_in(source))
        if place is not None:
            return place
    return None

