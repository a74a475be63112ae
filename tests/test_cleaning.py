"""Each cleaning rule, on the seeds where the noise really occurs, and on small cases."""

from __future__ import annotations

import re

import pytest

from policyrag.ingest import cleaning
from policyrag.ingest.cleaning import clean
from tests.conftest import SEEDS, TRADITIONAL_SEED


def seed(name: str) -> str:
    return (SEEDS / f"{name}.txt").read_text("utf-8")


@pytest.fixture(scope="module")
def cleaned() -> dict[str, str]:
    return {p.stem: clean(p.read_text("utf-8")) for p in SEEDS.glob("*.txt")}


def test_all_131_glued_pinyin_readings_are_removed():
    raw = seed(TRADITIONAL_SEED)
    assert len(cleaning.PINYIN.findall(raw)) == 131
    text = clean(raw)
    assert not re.search(r"\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)", text)
    assert "產業" in text and "(chǎn)" not in text
    assert "高質量發展" in text
    # Ordinary bracketed text survives: (市、區) lost only its pinyin.
    assert "各縣(市、區)" in text


def test_pinyin_only_after_chinese_characters():
    assert clean("產(chǎn)業(yè)") == "產業"
    assert clean("Version (dé) 1") == "Version (dé) 1"
    assert clean("全体(扩大)会议") == "全体(扩大)会议"


def test_page_break_markers_removed(cleaned):
    raw = seed("002_e8d0747b3dfad330")
    assert "(下转2版)" in raw and "(上接1版)" in raw
    text = cleaned["002_e8d0747b3dfad330"]
    assert "下转" not in text and "上接" not in text
    assert clean("推动(下转第3版)(紧接第1版)发展") == "推动发展"


def test_share_buttons_and_repost_lines_removed(cleaned):
    assert "分享到" in seed("002_e8d0747b3dfad330")
    assert "分享到" not in cleaned["002_e8d0747b3dfad330"]
    assert "本文转自" in seed("004_c93a4296dfa4c8a6")
    assert "本文转自" not in cleaned["004_c93a4296dfa4c8a6"]
    assert "66wz.com" not in cleaned["004_c93a4296dfa4c8a6"]


def test_bylines_removed_but_body_kept(cleaned):
    wz = cleaned["004_c93a4296dfa4c8a6"]
    assert "来源:温州日报" not in wz and "记者:杨世朋" not in wz and "温州网讯" not in wz
    lq = cleaned["002_e8d0747b3dfad330"]
    assert "编辑:叶成" not in lq and "2024-09-30 15:35:57" not in lq
    assert "本报讯" not in lq and "全媒体记者" not in lq
    assert lq.split("\n")[1].startswith("9月29日,区委七届六次全体")
    # A sentence that merely mentions a source is body text, not a byline.
    assert clean("会议指出,要拓宽资金来源:争取上级资金。") == "会议指出,要拓宽资金来源:争取上级资金。"


def test_long_attendee_lists_removed_short_ones_kept(cleaned):
    lq = cleaned["002_e8d0747b3dfad330"]
    assert "相关银行主要负责人" not in lq
    assert "王先义、卢红菊等区四套班子领导出席会议" in lq
    assert "市領導李鋒、張赟等出席會議" in cleaned[TRADITIONAL_SEED]


def test_width_and_whitespace_normalised():
    assert clean("ＡＢＣ１２３，全面推进") == "ABC123,全面推进"
    assert clean("  本报讯(全媒体记者\u00a0周\u00a0益)9月29日,会议举行。\r\n\r\n\r\n下一段") == \
        "9月29日,会议举行。\n下一段"
    assert clean("周 益 说\t\t要 抓 落实") == "周益说要抓落实"
    assert clean("a\x00b\x07c") == "abc"


def test_cleaning_keeps_the_reports_own_script(cleaned):
    assert "麗水" in cleaned[TRADITIONAL_SEED]
    assert "丽水" not in cleaned[TRADITIONAL_SEED]
    assert "莲都" in cleaned["000_e9f0a6d5a56f891f"]


def test_cleaning_is_idempotent(cleaned):
    for text in cleaned.values():
        assert clean(text) == text
