"""What kind of text a document is, read from its title and opening sentence.

communique  a plenum or meeting communiqué, or the news report of a meeting that a party
            committee, government, people's congress or CPPCC held (the seeds are these)
work_report a government work report (政府工作报告)
report      another report or speech (讲话, 工作报告, 致辞)
regulation  a regulation, measure or law text (条例, 办法, 规定 … with 第一条)
news        a news story
other       none of these
"""

from __future__ import annotations

import re

DOC_TYPES = ("communique", "work_report", "report", "regulation", "news", "other")

_REGULATION_TITLE = re.compile(r"(?:条例|办法|规定|规则|细则|法|决定|章程)(?:[(（][^)）]*[)）])?$")
# The report itself (青田县人民政府工作报告, 2025年政府工作报告), not news of one being discussed.
_WORK_REPORT_TITLE = re.compile(
    r"^(?:\d{4}年)?(?:中华人民共和国)?(?:国务院|[\u4e00-\u9fff]{1,15}(?:省|市|县|区|州|盟|旗))?"
    r"(?:\d{4}年)?(?:人民)?政府工作报告$")
# 各位代表！… 向大会报告过去五年的政府工作 (the State Council's reports open so too).
_WORK_REPORT_OPENING = re.compile(
    r"各位代表[:：,，!！].{0,80}(?:报告(?:[^,，。]{0,10}的)?政府工作|作政府工作报告|报告工作)", re.S)
# A speech's salutation on a line of its own, after the headline if there is one.
_SALUTATION = re.compile(r"(?:^|\n)\s*同志们[:：,，!！]")
_MEETING = (r"(?:会议|全会|全体会议|常务会议|务虚会|推进会|交流会|座谈会|部署会|动员会|大会|"
            r"工作会|常委会)")
_MEETING_HELD = re.compile(
    rf"(?:召开|举行|举办)(?!的)[^,，。;；\s]{{0,30}}?{_MEETING}(?!主席|代表|精神)|"
    rf"{_MEETING}(?:[(（][^)）]{{0,6}}[)）])?(?:在[^,，。]{{1,10}})?(?:召开|举行)")
# Who holds a meeting worth a communiqué: Chinese party and state bodies at any level.
_CONVENOR = re.compile(r"党|委|政府|国务院|政协|人大|中央|管委会|党工委|[省市县区]|在京|北京|人民大会堂")
# A speech or report as the whole headline, not "…上的讲话引发热烈反响".
_REPORT = re.compile(r"^[^《》“”,，]{0,30}在[^《》,，。]{2,60}上的(?:讲话|报告|致辞|发言|工作报告)(?:稿)?$|"
                     r"^[^《》“”,，\s]{0,40}(?:委员会|常委会|法院|检察院|[省市县区]委)工作报告$")
_NEWS_SUFFIX = re.compile(r"\s*[(（]新闻联播[^)）]*[)）]\s*$")
_AGENCY = re.compile(r"^(?:[^,，。]{0,20}(?:消息|讯|訊)(?:[(（][^)）]{0,30}[)）])?[:：,，]?\s*|本台消息[:：,，]\s*)+")
_NEWS = re.compile(r"新闻联播|央视网消息|本报讯|本台消息|新华社|记者|网讯|来源[:：]")
_ROUNDUP = re.compile(r"联播快讯|新闻摘要|简讯")
# Meetings that set no policy: commemorations, celebrations, ceremonies, press events.
_CEREMONY = re.compile(r"纪念|庆祝|祝贺|表彰|颁奖|追悼|悼念|开幕式|闭幕式|招待会|发布会|音乐会|晚会|"
                       r"报告会|首发|仪式|周年")


# What a plenary session is called, in simplified script; questions ask about one so too.
PLENARY_NAMES = r"全会|全体(?:（扩大）|\(扩大\))?会议"
_PLENARY = re.compile(PLENARY_NAMES)
# A plenary session as the meeting held, in its meeting line or headline; not one about another
# plenary ("…讨论拟提请十九届二中全会审议的文件", "学习贯彻六中全会精神").
_ABOUT_ANOTHER = re.compile(r"提请|学习|贯彻|落实|传达|精神|审议的|解读|宣讲|决定召开|筹备")


# A plenary communiqué speaks of the session as 全会 at the head of its sentences ("全会认为…");
# news that only studies one ("学习贯彻全会精神") does not.
_PLENARY_VOICE = re.compile(r"(?:^|[\n。!！])\s*全会(?:认为|指出|强调|要求|听取|审议|号召|通过|决定|提出)")


def is_plenary(title: str, meeting: str, opening: str = "") -> bool:
    """The document is about a plenary session it reports: its meeting line or headline names
    one, or its opening speaks as one (all simplified; any may be empty)."""
    named = [text for text in (meeting, title) if _PLENARY.search(text)]
    if any(_ABOUT_ANOTHER.search(text) for text in named):
        return False
    return bool(named) or bool(_PLENARY_VOICE.search(opening))


def lead_sentence(head: str) -> str:
    """The first sentence of the body: headline and byline lines skipped, and the agency line
    (央视网消息（新闻联播）：, 本报讯（记者 …）) taken off."""
    for line in head.split("\n"):
        body = _AGENCY.sub("", line.strip())
        if re.search(r"[,，。]", body):
            return re.split(r"[。!?！？]", body, maxsplit=1)[0]
    return ""


def classify(title: str, head: str) -> str:
    """`title` is the headline (may be empty); `head` the opening of the text, simplified."""
    first_line = _NEWS_SUFFIX.sub("", head.lstrip().split("\n", 1)[0].strip())
    heading = _NEWS_SUFFIX.sub("", title) or first_line
    if (_REGULATION_TITLE.search(heading) or _REGULATION_TITLE.search(first_line)) \
            and "第一条" in head[:3000]:
        return "regulation"
    if _WORK_REPORT_TITLE.search(heading) or _WORK_REPORT_OPENING.search(head[:600]):
        return "work_report"
    if _ROUNDUP.search(heading):
        return "news"
    # With a headline, the headline says what the text is; a lead may cite a past meeting.
    for text in (heading,) if title else (first_line, lead_sentence(head)):
        m = _MEETING_HELD.search(text)
        if m and _CONVENOR.search(text[: m.end()]) and not _CEREMONY.search(text):
            return "communique"
    if _REPORT.search(heading) or _SALUTATION.search(head[:300]):
        return "report"
    if _NEWS.search(title) or _NEWS.search(head[:200]):
        return "news"
    return "other"
