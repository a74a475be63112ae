"""The web UI in a real browser (Debian Chromium via Playwright) and through gradio_client.

One server per module on a free localhost port, over a writable copy of the session index; one
browser per module, a fresh context (its own Gradio session) per page.
"""

from __future__ import annotations

import csv
import re
import shutil
import threading
import time

import pytest

from tests import ui_helpers as ui  # before gradio is imported: sets the environment it reads

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio")
expect = sync_api.expect
expect.set_options(timeout=ui.UI_TIMEOUT_MS)

PRIORITIES_Q = "各地区分别把哪些工作作为重点？"
ENGLISH_Q = "How does Luqiao plan to attract private investment?"
NEW_REPORT = """青田县委十三届五次全体(扩大)会议召开

2024年12月1日,中共青田县委十三届五次全体(扩大)会议召开。会议提出,要全面推行“石雕数字护照”制度,为每一件青田石雕建立可追溯的身份档案。
会议强调,要做强侨乡特色产业,推动华侨要素回流,打造侨乡共富示范区。
"""


@pytest.fixture(scope="module")
def ui_engine(tmp_path_factory, index_dir, embedder):
    """An engine on a writable copy of the session index (uploads and removals change it)."""
    from policyrag.engine import Engine

    root = tmp_path_factory.mktemp("ui") / "index"
    shutil.copytree(index_dir, root)
    eng = Engine(root)
    eng._embedder = embedder
    return eng


@pytest.fixture(scope="module")
def app_url(ui_engine):
    with ui.running_app(ui_engine) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(ui.CHROMIUM) and not ui.os.path.exists(ui.CHROMIUM):
        pytest.skip(f"no Chromium at {ui.CHROMIUM}: run scripts/install-browser.sh")
    with sync_api.sync_playwright() as p:
        b = ui.launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make():
        ctx = ui.new_context(browser)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def client(app_url, tmp_path):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=str(tmp_path / "downloads"))


# ---------------------------------------------------------------- browser


def test_ask_compares_localities_and_shows_cited_source(app_url, new_page, ui_engine,
                                                         tmp_path):
    page = new_page()
    leaving: list[str] = []
    page.on("request", lambda r: leaving.append(r.url)
            if not r.url.startswith((app_url, "data:", "blob:")) else None)
    ui.open_app(page, app_url)
    page.locator("#examples").get_by_text(PRIORITIES_Q).click()  # an example fills the box
    expect(page.locator("#question textarea")).to_have_value(PRIORITIES_Q)
    page.locator("#ask-btn").click()

    cards = page.locator("#answer .pr-card")
    expect(cards.first).to_be_visible()
    expect(page.locator("#answer .pr-q")).to_have_text(PRIORITIES_Q)
    localities = ui_engine.index.localities()
    expect(cards).to_have_count(len(localities))
    for loc in localities:
        expect(page.locator(f'#answer .pr-card[data-locality="{loc}"] li').first).to_be_visible()

    # Citations are numbered; opening one shows its passage, the quote highlighted.
    cite = page.locator("#answer details.pr-cite").first
    expect(cite.locator("summary")).to_have_text("[1]")
    expect(cite.locator("mark")).to_be_hidden()
    cite.locator("summary").click()
    mark = cite.locator(".pr-source mark")
    expect(mark).to_be_visible()
    quote = mark.inner_text()
    assert len(quote) >= 8
    meta = cite.locator(".pr-src-meta").inner_text()
    doc = next(d for d in ui_engine.index.documents.values() if quote in d.text)
    # A report whose date cannot be read (seed 000: 8月20日, no year) shows none.
    assert doc.display_title in meta and doc.locality in meta and (doc.date or "") in meta
    point = cite.locator("xpath=ancestor::li[1]").locator(".pr-point").inner_text()
    assert quote in point

    # Sources: ranked hits, each with a relevance bar, in the report's own script (丽水 is
    # traditional).
    hits = page.locator("#sources .pr-hit")
    expect(hits.first).to_be_visible()
    assert hits.count() == 5
    expect(page.locator("#sources .pr-bar")).to_have_count(5)
    traditional = next(d for d in ui_engine.index.documents.values()
                       if d.script == "traditional")
    expect(page.locator(f'#answer .pr-card[data-locality="{traditional.locality}"]')
           ).to_contain_text("產業")

    shot = tmp_path / "ask.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
    assert leaving == [], f"the page reached beyond localhost: {leaving}"


def test_enter_asks_ranks_with_bars_and_downloads_markdown_and_csv(app_url, new_page,
                                                                   tmp_path):
    page = new_page()
    ui.open_app(page, app_url)
    box = page.locator("#question textarea")
    box.fill(ENGLISH_Q)
    box.press("Enter")  # no click: Enter asks
    expect(page.locator("#answer .pr-q")).to_have_text(ENGLISH_Q)
    expect(box).to_have_value(ENGLISH_Q)  # and left no newline behind

    # English question, extractive answer: said in English, the quotes in Chinese.
    expect(page.locator("#answer .pr-msg", has_text="quoted in Chinese")).to_be_visible()
    # …and the place the question names is shown as the scope applied.
    expect(page.locator("#answer .pr-msg", has_text="Scope:")).to_contain_text("路桥区")
    cite = page.locator("#answer details.pr-cite").first
    cite.locator("summary").click()
    quote = cite.locator(".pr-source mark").inner_text()
    assert re.search(r"[\u4e00-\u9fff]{4}", quote), quote

    # Relevance as rank and a bar: the best passage fills it, the others no more than it.
    bars = page.locator("#sources .pr-bar")
    expect(bars.first).to_be_visible()
    expect(bars.first.locator("span")).to_have_attribute("style", "width:100%")
    shares = [int(b.get_attribute("aria-valuenow")) for b in bars.all()]
    assert len(shares) == page.locator("#sources .pr-hit").count() >= 2
    assert shares == sorted(shares, reverse=True) and 0 < shares[-1] <= 100, shares
    assert not re.search(r"\b0\.\d{3}", page.locator("#sources").inner_text())  # no raw scores

    files = {}
    for kind in ("md", "csv"):
        with page.expect_download() as info:
            page.locator(f"#download-{kind}").click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        files[kind] = path
    assert files["md"].suffix == ".md" and files["csv"].suffix == ".csv"
    markdown = files["md"].read_text("utf-8")
    assert ENGLISH_Q in markdown and f"“{quote}”" in markdown  # the quote, as a footnote
    with files["csv"].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["question"] for r in rows} == {ENGLISH_Q}
    assert quote in {r["quote"] for r in rows}


def test_friendly_messages_never_tracebacks(app_url, new_page):
    page = new_page()
    ui.open_app(page, app_url)
    status = page.locator("#status")
    page.locator("#ask-btn").click()
    expect(status).to_contain_text("Please type a question")

    page.locator("#date-from input, #date-from textarea").first.fill("2099")
    ui.ask(page, "招商引资")
    expect(status).to_contain_text("Nothing found")

    page.locator("#date-from input, #date-from textarea").first.fill("next year")
    ui.ask(page, "招商引资")
    expect(status).to_contain_text("is not a date")
    body = page.locator("body").inner_text()
    assert "Traceback" not in body


def test_upload_is_searchable_at_once_then_remove(app_url, new_page, ui_engine, tmp_path):
    report = tmp_path / "qingtian_report.txt"
    report.write_text(NEW_REPORT, encoding="utf-8")
    page = new_page()
    ui.open_app(page, app_url)
    ui.select_tab(page, "Library")
    library = page.locator("#library")
    expect(library).to_contain_text("丽水经开区")
    page.locator("#upload input[type=file]").set_input_files([str(report)])
    expect(page.locator("#upload-status")).to_contain_text("Added 1 report(s): qingtian_report")
    expect(library).to_contain_text("青田县委十三届五次全体(扩大)会议召开")
    expect(page.locator("#stats")).to_contain_text("6 reports")
    page.screenshot(path=str(tmp_path / "library.png"), full_page=True)

    ui.select_tab(page, "Ask")
    ui.ask(page, "石雕数字护照")
    first = page.locator("#sources .pr-hit").first
    expect(first).to_have_attribute("data-doc", "qingtian_report")
    expect(first).to_contain_text("“石雕数字护照”制度")

    ui.select_tab(page, "Library")
    ui.choose_option(page, "remove-doc", re.compile("qingtian_report"))
    page.locator("#remove-btn").click()
    expect(page.locator("#remove-status")).to_contain_text("Removed qingtian_report")
    expect(library).not_to_contain_text("青田县委")
    assert "qingtian_report" not in ui_engine.index.documents
    assert not (ui_engine.root / "uploads" / report.name).exists()

    assert all(h.doc_id != "qingtian_report" for h in ui_engine.search("石雕数字护照", 5))


def test_two_users_at_once_get_their_own_answers(app_url, new_page):
    questions = [ENGLISH_Q, "招商引资有哪些举措？"]
    pages = [new_page(), new_page()]
    for p in pages:
        ui.open_app(p, app_url)
    for p, q in zip(pages, questions, strict=True):  # both asked before either is awaited
        ui.ask(p, q)
    for p, q in zip(pages, questions, strict=True):
        expect(p.locator("#answer .pr-q")).to_have_text(q)
        expect(p.locator("#sources .pr-hit").first).to_be_visible()
    luqiao = pages[0].locator("#sources").inner_text()
    assert "路桥" in luqiao


# ---------------------------------------------------------------- gradio_client API


def test_api_search_and_ask(client, ui_engine):
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/search", "/ask"} <= set(api["named_endpoints"])

    res = client.predict("招商引资", 3, api_name="/search")
    assert res["query"] == "招商引资" and len(res["hits"]) == 3
    hit = res["hits"][0]
    doc = ui_engine.index.documents[hit["doc_id"]]
    assert doc.text[hit["start"]:hit["end"]] == hit["text"]

    res = client.predict(query="招商引资", k=5, localities=["Wenzhou"], api_name="/search")
    assert res["hits"] and {h["locality"] for h in res["hits"]} == {"温州市"}

    ans = client.predict(PRIORITIES_Q, api_name="/ask")
    assert ans["question"] == PRIORITIES_Q and ans["mode"] == "extractive"
    assert {loc["locality"] for loc in ans["localities"]} == set(ui_engine.index.localities())
    for loc in ans["localities"]:
        assert loc["points"], loc["locality"]
        for p in loc["points"]:
            for c in p["citations"]:
                text = ui_engine.index.documents[c["doc_id"]].text
                assert text[c["start"]:c["end"]] == c["quote"]

    # With k left automatic, as on the command line, a report's whole list comes back: all
    # seven lines of work of the development zone, not the first five.
    etdz = next(loc for loc in ans["localities"] if loc["locality"] == "丽水经开区")
    etdz_text = "".join(p["text"] for p in etdz["points"])
    assert all(line in etdz_text for line in ("双招双引", "产业集聚", "项目突破", "科技创新",
                                              "改革开放", "民生福祉", "平安稳定"))

    ans = client.predict(question=ENGLISH_Q, by_locality=False, k=3, api_name="/ask")
    assert len(ans["localities"]) == 1 and len(ans["localities"][0]["points"]) <= 3

    assert "empty" in client.predict("  ", api_name="/ask")["error"]
    assert "not a date" in client.predict("x", 3, None, None, "2024/01", api_name="/search")[
        "error"]
    # One locality as a plain string is that place, not seven letters; a misspelt one is an
    # error naming the nearest known place, never an empty success.
    wenzhou = client.predict(query="改革", k=3, localities="Wenzhou", api_name="/search")
    assert wenzhou["hits"] and {h["locality"] for h in wenzhou["hits"]} == {"温州市"}
    assert "温州市" in client.predict(query="改革", k=3, localities=["Wenzou"],
                                     api_name="/search")["error"]
    assert "2024-13-45" in client.predict(query="改革", k=3, date_from="2024-13-45",
                                          api_name="/search")["error"]


def test_abstractive_off_without_a_model(monkeypatch, client):
    from policyrag import app
    from policyrag.answer import generate
    from policyrag.engine import Engine

    reason = "no generative model available: test says so"
    monkeypatch.setattr(generate, "unavailable_reason", lambda: reason)
    ans = client.predict(ENGLISH_Q, "abstractive", False, 2, api_name="/ask")
    assert ans["mode"] == "extractive" and reason in ans["notice"]  # falls back, and says so
    assert ans["localities"][0]["points"]

    demo = app.build_app(Engine("/nonexistent-index"))  # the page opens even with no index
    mode = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "mode")
    assert mode.interactive is False and reason in mode.info


class ScriptedGenerator:
    """Stands in for the local model (far too slow for a UI test on 2 cores). An English answer
    is written in Chinese first and each checked sentence translated (see abstractive.py)."""

    name = "scripted"

    def generate(self, prompt, *, system=None, max_tokens=512, temperature=0.2):
        if system and system.startswith("Translate"):
            # Sentences the cited points support: the UI shows only what passed the check.
            return ("Luqiao focuses on private investment" if "民间投资" in prompt
                    else "Luqiao will expand effective investment by stimulating private vitality")
        return "路桥聚焦民间投资，创新政府和社会资本合作模式[1]。路桥激发民间活力，扩大有效投资[2]。"


def _ask_abstractive(page, url: str, question: str):
    """The page, asked `question` in abstractive mode with one answer for all localities."""
    ui.open_app(page, url)
    page.locator("#mode").get_by_role("radio", name="abstractive").check()
    page.locator("#by-locality input[type=checkbox]").uncheck()
    ui.ask(page, question)
    return page


class HeldGenerator(ScriptedGenerator):
    """The scripted model, held after its first translated sentence until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.translations = 0

    def generate(self, prompt, *, system=None, max_tokens=512, temperature=0.2):
        if system and system.startswith("Translate"):
            self.translations += 1
            if self.translations > 1:
                assert self.release.wait(60), "the test never released the model"
        return super().generate(prompt, system=system, max_tokens=max_tokens,
                                temperature=temperature)


def test_abstractive_answers_stream_in_their_own_queue(monkeypatch, ui_engine, new_page):
    """While one abstractive answer is being written, its checked sentences appear one by one,
    and another user's search and extractive answer are served at once."""
    from gradio_client import Client

    from policyrag.answer import generate
    from policyrag.answer.abstractive import Rewriter

    monkeypatch.setattr(generate, "unavailable_reason", lambda: None)
    held = HeldGenerator()
    with ui.running_app(ui_engine, rewriter=Rewriter(held)) as url:
        page = _ask_abstractive(new_page(), url, ENGLISH_Q)
        writing = page.locator("#answer .pr-writing")
        expect(writing).to_contain_text("1 sentence checked")
        expect(writing.locator("li")).to_have_text(["Luqiao focuses on private investment."])
        other = Client(url, verbose=False)
        started = time.monotonic()
        assert other.predict("招商引资", 3, api_name="/search")["hits"]
        assert other.predict("各地区分别把哪些工作作为重点？", api_name="/ask")["localities"]
        assert time.monotonic() - started < 30 and not held.release.is_set()
        held.release.set()
        expect(page.locator("#answer .pr-answer-head")).to_contain_text("abstractive")
        expect(page.locator("#answer .pr-writing")).to_have_count(0)
        expect(page.locator("#answer .pr-card")).to_contain_text(
            "Luqiao will expand effective investment")


def test_abstractive_answer_in_the_page(monkeypatch, ui_engine, new_page):
    from policyrag.answer import generate
    from policyrag.answer.abstractive import Rewriter

    monkeypatch.setattr(generate, "unavailable_reason", lambda: None)
    with ui.running_app(ui_engine, rewriter=Rewriter(ScriptedGenerator())) as url:
        page = _ask_abstractive(new_page(), url, ENGLISH_Q)
        card = page.locator("#answer .pr-card")
        expect(card).to_have_count(1)
        expect(card).to_contain_text("Luqiao focuses on private investment")
        expect(page.locator("#answer .pr-answer-head")).to_contain_text("abstractive")
        point = card.locator("li").first
        assert "[1]" not in point.locator(".pr-point").inner_text()  # chips replace markers
        cite = point.locator("details.pr-cite").first
        cite.locator("summary").click()
        expect(cite.locator(".pr-source mark")).to_be_visible()
        expect(cite.locator(".pr-src-meta")).to_contain_text("路桥区")


def test_searches_keep_working_while_a_report_is_added(client, ui_engine, tmp_path):
    report = tmp_path / "upload_during_search.txt"
    report.write_text(NEW_REPORT.replace("石雕数字护照", "侨乡数字身份证"), encoding="utf-8")
    errors: list[BaseException] = []

    def add():
        try:
            ui_engine.add([report])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writer = threading.Thread(target=add)
    writer.start()
    results = []
    while writer.is_alive() or not results:
        results.append(client.predict("共同富裕", 3, api_name="/search"))
    writer.join()
    assert not errors
    assert all("error" not in r and len(r["hits"]) == 3 for r in results), results
    found = client.predict("侨乡数字身份证", 1, api_name="/search")["hits"]
    assert found[0]["doc_id"] == "upload_during_search"
    ui_engine.remove(["upload_during_search"])
    assert "upload_during_search" not in ui_engine.index.documents


# ---------------------------------------------------------------- policyrag serve


def test_serve_builds_the_missing_index_first(monkeypatch, tmp_path, seed_copy, capsys):
    from policyrag import app
    from policyrag.cli import main

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for f in sorted(seed_copy.glob("*.txt"))[:2]:
        shutil.copy(f, seeds / f.name)
    monkeypatch.setenv("POLICYRAG_SEEDS", str(seeds))
    served = {}

    def fake_serve(engine, host, port, **kw):
        served.update(engine=engine, host=host, port=port)

    monkeypatch.setattr(app, "serve", fake_serve)
    t0 = time.monotonic()
    assert main(["serve", "--index", str(tmp_path / "idx"), "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert "building it from" in err and "built" in err
    assert served["host"] == "127.0.0.1" and served["port"] == 8123
    assert len(served["engine"].info()["documents"]) == 2
    print(f"serve with a fresh build: {time.monotonic() - t0:.1f}s")
    assert main(["serve", "--index", str(tmp_path / "idx"), "--port", "99999"]) == 2


def test_a_comparison_of_many_localities_is_paged():
    """Forty localities: the first eight shown, the rest a click away in pages of eight, and
    reports with no locality under their own heading."""
    from policyrag import app

    groups = [{"locality": f"县{i:02d}", "doc_ids": [], "points": [{"text": f"要点{i}",
                                                                    "citations": []}]}
              for i in range(39)] + [{"locality": None, "doc_ids": [], "points": []}]
    html = app.render_answer(None, {"question": "各地区分别把哪些工作作为重点？",
                                    "mode": "extractive", "localities": groups,
                                    "scope": "searching only reports of 丽水"})
    first, *rest = html.split('<details class="pr-page">')
    assert first.count('class="pr-card"') == 8 and len(rest) == 4
    assert "Localities 9–16 of 40" in rest[0] and "Localities 33–40 of 40" in rest[-1]
    assert "Locality unknown" in rest[-1] and "Scope: searching only reports of 丽水" in first
