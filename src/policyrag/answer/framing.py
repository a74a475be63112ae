"""Framing sentences: what a report says around its priorities rather than the priorities.

Chinese meeting reports wrap their work plan in formulaic sentences that name no task:
a review of the year (“全会认为,今年是极不平凡的一年”, “…指出,今年以来…”), the duty to study
a higher meeting (“要深入学习贯彻…精神”, “以习近平新时代中国特色社会主义思想为引领”), and
announcements of work to come (“要有的放矢抓好重点工作”, “关于下半年的工作,…抓好这五个方面”).
A "what were the priorities" answer lists what follows them, never them. Texts are simplified
script (`script.to_simplified`).
"""

from __future__ import annotations

import re

REVIEW, STUDY, ANNOUNCE = "review", "study", "announce"

# “吴舜泽强调,要…”, “全会指出,…”, “我们要…”: who speaks and the modal, before the content.
_SPEAKER = re.compile(
    r"^(?:[^,，。:：]{0,14}?(?:强调|指出|要求|提出|认为|表示)[,，:：])?\s*"
    r"(?:我们|各地各部门|各级各部门)?(?:要|必须)?")
_CLAUSE = re.compile(r"[^,，;；:：。!！?？]+")
_SINCE = r"(?:今年以来|一年来|过去一年|过去五年|五年来|近年来|[一二三四五]年来)"
# A meeting's judgement (not its instruction: “全会指出,要…” is a directive).
_REVIEW = re.compile(
    rf"^(?:全会|会议|大会|[\u4e00-\u9fff]{{2,4}})(?:认为|一致认为|指出|充分肯定|回顾|总结)"
    rf"[,，:：]\s*(?!要|必须|我们要)|(?:认为|指出|肯定)[,，:：]\s*{_SINCE}|^{_SINCE}")
_STUDY = re.compile(
    r"(?:学习|贯彻|落实|领悟|领会)[^,，。]{0,30}(?:精神|讲话|指示|论述|决策部署|部署要求)"
    r"|以习近平新时代中国特色社会主义思想为(?:指导|引领|指引)")
# Work named only by its kind or number: “抓好重点工作”, “推动各项重点攻坚行动”, “这五个方面”.
_ANNOUNCE = re.compile(
    r"(?:各项|重点|这[两二三四五六七八九十几]个?|以下|如下|全年|下半年|明年)[^,，。]{0,6}"
    r"(?:工作|任务|行动|方面)$|^关于[^,，。]{0,12}工作$|各项工作")
MIN_HEAD = 4  # a clause shorter than this (“当前”) is a time word, not the sentence's content


def head_clause(simplified: str) -> str:
    """The sentence's first clause of content, without speaker and modal."""
    rest = simplified[_SPEAKER.match(simplified).end():]
    for m in _CLAUSE.finditer(rest):
        clause = m.group().strip()
        if len(clause) >= MIN_HEAD:
            return clause
    return ""


def framing(simplified: str) -> str | None:
    """REVIEW, STUDY or ANNOUNCE for a framing sentence, None for one that says what to do."""
    text = simplified.strip()
    if _REVIEW.search(text):
        return REVIEW
    head = head_clause(text)
    if re.match(_SINCE, head):
        return REVIEW
    if _STUDY.search(head):
        return STUDY
    if _ANNOUNCE.search(head):
        return ANNOUNCE
    return None
