"""Reports as they come: Word files, text PDFs and saved web pages, made here with the same
libraries people's tools use, read into the same cleaned, citable text as a .txt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policyrag.cli import index_cmd, main, search_cmd
from policyrag.engine import Engine
from policyrag.index import lifecycle as idx
from policyrag.ingest.documents import load_documents, read_document
from policyrag.ingest.readers import ReadError, read_file, read_source
from tests.conftest import ROOT, report

# ---- makers ----------------------------------------------------------------------------------

DOCX_BEFORE = "过去一年,全区上下紧紧围绕瓯江山水诗路建设,地区生产总值增长7.2%。"
DOCX_TABLE = [["指标", "2023年", "增长"], ["地区生产总值", "1964亿元", "7.2%"],
              ["固定资产投资", "512亿元", "10.3%"]]
DOCX_AFTER = "今年主要目标是:经济增长7%左右,畲乡风情旅游带建设取得突破。"


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("莲都区2024年政府工作报告", level=1)
    d.add_paragraph(DOCX_BEFORE)
    table = d.add_table(rows=len(DOCX_TABLE) + 1, cols=3)
    for r, row in enumerate(DOCX_TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = table.cell(len(DOCX_TABLE), 0).merge(table.cell(len(DOCX_TABLE), 1))
    merged.text = "合计"
    table.cell(len(DOCX_TABLE), 2).text = "—"
    d.add_paragraph(DOCX_AFTER)
    d.save(str(path))


PDF_TITLE = "丽水市推进山区共同富裕工作报告"
PDF_HEADER = "丽水市人民政府办公室文件"
TOPICS = ["生态产品价值实现机制", "山区共同富裕", "数字经济", "招商引资", "营商环境优化提升",
          "乡村振兴", "城市有机更新", "文旅深度融合", "科技创新", "民生保障", "安全生产",
          "绿色低碳转型", "县域医共体", "教育共同体"]
PDF_PARAGRAPHS = [
    f"关于{t}。会议指出,{t}是今年工作的重中之重,各地各部门要对标对表年度目标,细化工作举措,"
    f"压实主体责任,确保{t}各项任务在{i % 12 + 1}月底前取得阶段性成效,以实干实绩推动丽水"
    f"高质量发展,{'奋力' * (i % 3)}谱写中国式现代化丽水篇章。"
    for i, t in enumerate(TOPICS)
]


def make_pdf(path: Path, footer: str) -> None:
    """A text PDF as an office exports it: a CJK font, a running head, a page number at the
    foot, paragraphs with a first-line indent that wrap over several lines and pages."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    body = ParagraphStyle("body", fontName="STSong-Light", fontSize=14, leading=24,
                          firstLineIndent=28, wordWrap="CJK")
    title = ParagraphStyle("title", parent=body, fontSize=20, leading=30, firstLineIndent=0,
                           alignment=1)

    def furniture(canvas, doc) -> None:
        canvas.setFont("STSong-Light", 10)
        canvas.drawCentredString(A4[0] / 2, A4[1] - 40, PDF_HEADER)
        canvas.drawCentredString(A4[0] / 2, 36, footer.format(n=doc.page))

    story = [Paragraph(PDF_TITLE, title), Spacer(1, 12)]
    story += [Paragraph(p, body) for p in PDF_PARAGRAPHS]
    SimpleDocTemplate(str(path), pagesize=A4).build(story, onFirstPage=furniture,
                                                    onLaterPages=furniture)


def make_two_column_pdf(path: Path) -> None:
    """A newspaper-style page: the headline across the top, the text in two columns."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        FrameBreak,
        NextPageTemplate,
        PageTemplate,
        Paragraph,
    )

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    body = ParagraphStyle("body", fontName="STSong-Light", fontSize=11, leading=17,
                          firstLineIndent=22, wordWrap="CJK")
    title = ParagraphStyle("title", parent=body, fontSize=20, leading=30, firstLineIndent=0,
                           alignment=1)
    w, h, margin, gutter = *A4, 50, 20
    col = (w - 2 * margin - gutter) / 2

    def columns(top: float) -> list[Frame]:
        return [Frame(x, margin + 20, col, top - margin - 20)
                for x in (margin, margin + col + gutter)]

    def furniture(canvas, doc) -> None:
        canvas.setFont("STSong-Light", 9)
        canvas.drawCentredString(w / 2, h - 30, "丽水日报")
        canvas.drawCentredString(w / 2, 30, f"- {doc.page} -")

    first = PageTemplate("first", [Frame(margin, h - margin - 50, w - 2 * margin, 50),
                                   *columns(h - margin - 60)], onPage=furniture)
    later = PageTemplate("later", columns(h - margin), onPage=furniture)
    story = [Paragraph(PDF_TITLE, title), NextPageTemplate("later"), FrameBreak()]
    story += [Paragraph(p, body) for p in PDF_PARAGRAPHS * 2]
    BaseDocTemplate(str(path), pagesize=A4, pageTemplates=[first, later]).build(story)


PDF_TABLE_LEAD = "全市主要经济指标如下表所示,总体保持平稳增长态势,质量效益稳步提升,高质量发展取得新成效。"


def make_table_pdf(path: Path) -> None:
    """A paragraph, a ruled table of figures with roomy columns, a paragraph."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    body = ParagraphStyle("body", fontName="STSong-Light", fontSize=12, leading=20,
                          firstLineIndent=24, wordWrap="CJK")
    table = Table(DOCX_TABLE, colWidths=[150, 100, 80],
                  style=TableStyle([("FONTNAME", (0, 0), (-1, -1), "STSong-Light"),
                                    ("GRID", (0, 0), (-1, -1), 0.5, "black")]))
    SimpleDocTemplate(str(path), pagesize=A4).build(
        [Paragraph(PDF_TABLE_LEAD, body), Spacer(1, 30), table, Spacer(1, 30),
         Paragraph(DOCX_AFTER, body)])


def make_scanned_pdf(path: Path, page_numbers: bool = False) -> None:
    """Pages that are only pictures of text, as a scanner makes them: no text layer, except
    perhaps the page numbers a copier stamps on."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for n, shade in enumerate((200, 120), start=1):
        c.drawImage(ImageReader(Image.new("L", (200, 280), shade)), 50, 80, 495, 690)
        c.rect(40, 70, 515, 710)
        if page_numbers:
            c.drawCentredString(A4[0] / 2, 36, f"- {n} -")
        c.showPage()
    c.save()


HTML_BODY = [
    "3月14日,莲都区召开招商引资工作推进会,总结去年招商引资工作成效,部署今年重点任务。",
    "会议指出,要坚持把招商引资作为经济工作的生命线,聚焦生态工业、数字经济等主导产业,精准开展"
    "产业链招商,全力引进一批投资体量大、科技含量高、带动能力强的优质项目。",
    "会议强调,各乡镇(街道)、各部门要压实工作责任,优化营商环境,强化要素保障,确保签约项目"
    "早落地、早投产、早见效,为高质量发展注入强劲动能。",
]
HTML_TITLE = "莲都区召开招商引资工作推进会"
# What a government portal puts around every article; none of it is report text.
HTML_FURNITURE = ["政务公开", "互动交流", "当前位置", "分享到", "微博", "相关文章",
                  "丽水市召开重大项目建设推进会", "营商环境优化提升大会", "主办单位", "浙ICP备",
                  "网站标识码", "浏览次数"]


PUB_META = '<meta name="PubDate" content="2024-03-15 09:30">'
PUB_LINE = "发布日期：2024-03-15"


def saved_page(body: list[str] = HTML_BODY, meta: str = PUB_META, dateline: str = PUB_LINE) -> str:
    paragraphs = "\n".join(f"<p>{p.replace(',', '，')}</p>" for p in body)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8">
<title>{HTML_TITLE}_莲都区人民政府</title>
{meta}
</head><body>
<div class="header"><ul class="nav"><li><a href="/">首页</a></li>
<li><a href="/zwgk">政务公开</a></li><li><a href="/zwfw">政务服务</a></li>
<li><a href="/hdjl">互动交流</a></li></ul></div>
<div class="position">当前位置：<a href="/">首页</a> &gt; <a href="/zwgk">政务公开</a></div>
<div class="article">
<h1>{HTML_TITLE}</h1>
<div class="info">{dateline} 来源：莲都区融媒体中心 浏览次数：1024</div>
<div class="content">
{paragraphs}
</div>
<div class="share">分享到：<a>微信</a><a>微博</a><a>QQ空间</a></div>
</div>
<div class="related"><h3>相关文章</h3><ul>
<li><a href="/a1.html">丽水市召开重大项目建设推进会</a></li>
<li><a href="/a2.html">莲都区举行营商环境优化提升大会</a></li></ul></div>
<div class="footer"><p>主办单位：丽水市莲都区人民政府办公室 联系电话：0578-2123456</p>
<p>浙ICP备05011234号</p><p>网站标识码：3311020001</p></div>
</body></html>
"""


# ---- Word ------------------------------------------------------------------------------------

def test_docx_paragraphs_and_tables_in_document_order(tmp_path):
    path = tmp_path / "莲都区政府工作报告.docx"
    make_docx(path)
    lines = read_file(path).splitlines()
    table_rows = [" | ".join(row) for row in DOCX_TABLE] + ["合计 | —"]  # merged cell once
    assert lines == ["莲都区2024年政府工作报告", DOCX_BEFORE, *table_rows, DOCX_AFTER]
    doc = read_document(path)
    assert doc.title == "莲都区2024年政府工作报告"
    assert "地区生产总值 | 1964亿元 | 7.2%" in doc.text


def test_broken_word_and_pdf_files_are_named_and_skipped(tmp_path):
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    make_pdf(tmp_path / "whole.pdf", "- {n} -")
    data = (tmp_path / "whole.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[:len(data) // 3])  # an interrupted download
    (tmp_path / "whole.pdf").unlink()
    docs, errors = load_documents([tmp_path])
    assert not docs
    assert sorted(str(e) for e in errors) == [
        f"{tmp_path / 'broken.docx'}: is not a readable .docx file (not a ZIP package); "
        "an old .doc must be saved as .docx first",
        f"{tmp_path / 'cut.pdf'}: is not a readable PDF (Unexpected EOF)",
    ]


# ---- PDF -------------------------------------------------------------------------------------

@pytest.mark.parametrize("footer", ["- {n} -", "第{n}页", "— {n} —"])
def test_text_pdf_without_running_heads_page_numbers_or_broken_lines(tmp_path, footer):
    from pdfminer.high_level import extract_text

    path = tmp_path / "report.pdf"
    make_pdf(path, footer)
    pages = [extract_text(str(path), page_numbers=[i]).replace("\n", "") for i in range(4)]
    # The test means something only if a paragraph runs on from one page to the next.
    assert any(p[:20] in pages[i] and p[-20:] in pages[i + 1]
               for p in PDF_PARAGRAPHS for i in range(3))

    text = read_file(path)
    lines = text.splitlines()
    # One line per paragraph, in reading order: every wrap (and page break) inside a sentence
    # is joined with no space or newline between the Chinese characters.
    assert lines == [PDF_TITLE, *PDF_PARAGRAPHS]
    assert PDF_HEADER not in text
    doc = read_document(path)
    assert doc.title == PDF_TITLE
    assert doc.text.splitlines() == lines  # cleaning leaves the joined text as it is


def test_two_columns_are_read_one_after_the_other(tmp_path):
    path = tmp_path / "paper.pdf"
    make_two_column_pdf(path)
    assert read_file(path).splitlines() == [PDF_TITLE, *PDF_PARAGRAPHS * 2]


def test_pdf_table_is_read_row_by_row(tmp_path):
    path = tmp_path / "figures.pdf"
    make_table_pdf(path)
    rows = [" ".join(row) for row in DOCX_TABLE]
    assert read_file(path).splitlines() == [PDF_TABLE_LEAD, *rows, DOCX_AFTER]


def test_scanned_pdf_is_skipped_with_the_reason(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_scanned_pdf(folder / "scan.pdf")
    make_scanned_pdf(folder / "numbered_scan.pdf", page_numbers=True)
    (folder / "typed.txt").write_text(report("龙泉青瓷小镇"), "utf-8")
    with pytest.raises(ReadError, match=r"scan\.pdf: has no text layer \(scanned\?\)"):
        read_file(folder / "scan.pdf")
    docs, errors = load_documents([folder])
    assert [d.doc_id for d in docs] == ["typed"]  # never indexed as an empty report
    assert sorted(e.path.name for e in errors) == ["numbered_scan.pdf", "scan.pdf"]
    assert all("no text layer (scanned?)" in str(e) for e in errors)


# ---- web pages -------------------------------------------------------------------------------

def test_saved_page_keeps_the_article_title_and_date_only(tmp_path):
    path = tmp_path / "article.html"
    path.write_text(saved_page(), "utf-8")
    source = read_source(path)
    assert source.meta == {"title": HTML_TITLE, "date": "2024-03-15"}
    doc = read_document(path)
    assert doc.title == HTML_TITLE and doc.date == "2024-03-15" and not doc.date_inferred
    assert doc.text.splitlines() == [HTML_TITLE, *HTML_BODY]
    for noise in HTML_FURNITURE:
        assert noise not in doc.text, noise


@pytest.mark.parametrize(("meta", "dateline", "date"), [
    ("", PUB_LINE, "2024-03-15"),
    ("", "发布时间：2024年3月5日", "2024-03-05"),
    # No date on the page and no year in the text: left empty, neither half a date
    # ("--03-14") nor a made-up 2024-01-01.
    ("", "", None),
])
def test_saved_page_date_as_the_portal_states_it(tmp_path, meta, dateline, date):
    path = tmp_path / "article.html"
    path.write_text(saved_page(meta=meta, dateline=dateline), "utf-8")
    assert read_document(path).date == date


def test_gbk_page_and_sidecar_beats_what_the_page_says(tmp_path):
    path = tmp_path / "gbk.htm"
    path.write_bytes(saved_page().replace('charset="utf-8"', 'charset="gbk"').encode("gbk"))
    (tmp_path / "metadata.toml").write_text('["gbk.htm"]\ndate = "2024-03-14"\n', "utf-8")
    docs, errors = load_documents([tmp_path])
    assert not errors
    assert docs[0].date == "2024-03-14" and docs[0].title == HTML_TITLE
    assert HTML_BODY[1] in docs[0].text


def test_page_with_no_article_falls_back_to_its_text(tmp_path):
    path = tmp_path / "short.html"
    path.write_text("<html><body><p>莲都区召开会议。</p></body></html>", "utf-8")
    assert read_document(path).text == "莲都区召开会议。"


# ---- one folder of everything, through the command line ---------------------------------------

DOCX_MARKER = "松阳茶香古村落"


@pytest.fixture
def shared_model(monkeypatch, embedder):
    """The CLI's engines reuse the session's loaded model."""
    def make_engine(index=None, model=None, **kw):
        eng = Engine(index, model, **kw)
        eng._embedder = embedder
        return eng

    monkeypatch.setattr(index_cmd, "Engine", make_engine)
    monkeypatch.setattr(search_cmd, "Engine", make_engine)


def test_mixed_folder_is_one_index_add_away_and_quotes_are_exact(tmp_path, shared_model,
                                                                 capsys):
    import docx

    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "plain.txt").write_text(report("景宁畲族风情"), "utf-8")
    (folder / "notes.md").write_text("---\ntitle: 青田侨乡\n---\n" + report("青田侨乡"), "utf-8")
    (folder / "page.html").write_text(saved_page(), "utf-8")
    (folder / "old_page.htm").write_text(saved_page([report("庆元廊桥")]), "utf-8")
    make_pdf(folder / "pdf_report.pdf", "- {n} -")
    d = docx.Document()
    d.add_paragraph("松阳县传统村落保护利用工作会议召开")
    for i in range(1, 6):
        d.add_paragraph(f"第{i}项工作要求各部门压实责任,确保{DOCX_MARKER}保护利用取得实效。")
    d.save(str(folder / "word_report.docx"))
    make_scanned_pdf(folder / "scan.pdf")

    root = tmp_path / "index"
    code = main(["index", "add", str(folder), "--index", str(root)])
    out, err = capsys.readouterr()
    assert code == 1, err  # the scanned PDF was skipped, and said so
    assert err.strip() == f"skipped {folder / 'scan.pdf'}: has no text layer (scanned?): " \
                          "2 page(s), 2 with images only; run OCR on it first, or give the " \
                          "report as text"
    assert "added 6," in out
    documents = idx.open_index(root).documents
    assert sorted(documents) == ["notes", "old_page", "page", "pdf_report", "plain",
                                 "word_report"]

    assert main(["search", DOCX_MARKER, "--index", str(root), "--json", "-k", "3"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    top = hits[0]
    assert top["doc_id"] == "word_report" and DOCX_MARKER in top["text"]
    for hit in hits:  # each quote is the cleaned text at the offsets it cites
        assert hit["text"] == documents[hit["doc_id"]].text[hit["start"]:hit["end"]]

    # A rebuild re-reads every format from its source, rather than keeping stored text.
    assert main(["index", "rebuild", "--index", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "kept" not in out + err and err == ""
    assert idx.open_index(root).documents["word_report"].text == documents["word_report"].text


# ---- a closed pipe ---------------------------------------------------------------------------

def test_search_into_head_ends_quietly(index_dir, tmp_path):
    queries = tmp_path / "queries.txt"
    # Enough answers (several hundred kB) that head is gone long before the last is written.
    queries.write_text("\n".join(["招商引资", "共同富裕", "营商环境", "乡村振兴"] * 15), "utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = (f"{sys.executable} -m policyrag search --batch {queries} --index {index_dir} "
           "| head -1; echo \"status=${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env,
                          timeout=300)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.stderr.strip() == "status=141"
    assert json.loads(done.stdout)["query"] == "招商引资"
