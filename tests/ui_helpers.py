"""Helpers for the web UI tests: the app on a free localhost port, Debian Chromium via Playwright.

Importing this module sets the environment Gradio reads at import time, so import it before
anything that imports gradio. Never run `playwright install`: the browser is Debian's
/usr/bin/chromium (scripts/install-browser.sh), the only one this offline machine can have.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
# Gradio copies uploads here (read when gradio is imported); keep them out of /tmp/gradio.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="policyrag-gradio-"))

import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests may run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no calls to Google hosts from an offline machine
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
]
UI_TIMEOUT_MS = int(os.environ.get("UI_TIMEOUT_MS", "30000"))  # 2 busy cores: be generous
# Every request that leaves loopback is aborted: the page must work offline.
NON_LOCAL_URL = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost|\[::1\])[:/])[a-z]+://")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"web UI at {url} not ready: {last!r}")


@contextmanager
def running_app(engine, attempts: int = 3, **app_options) -> Iterator[str]:
    """`policyrag.app.serve` in Gradio's own thread on a free port; yields the base URL."""
    from policyrag.app import serve

    last: Exception | None = None
    for _ in range(attempts):  # the free port can be taken between bind() and launch()
        port = free_port()
        try:
            demo = serve(engine, "127.0.0.1", port, block=False, quiet=True, **app_options)
            break
        except OSError as exc:
            last = exc
    else:
        raise RuntimeError(f"could not launch the web UI: {last!r}")
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http_ok(url)
        yield url
    finally:
        demo.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS, timeout=60_000)


def new_context(browser):
    ctx = browser.new_context(viewport={"width": 1360, "height": 1000}, locale="zh-CN")
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    ctx.route(NON_LOCAL_URL, lambda route: route.abort())
    return ctx


# ---------------------------------------------------------------- page actions


def open_app(page, url: str) -> None:
    """Gradio renders client-side: wait for a real component, not for the load event."""
    from playwright.sync_api import expect

    page.goto(url, wait_until="domcontentloaded")
    expect(page.locator("#question textarea")).to_be_visible()


def ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask-btn").click()


def select_tab(page, label: str) -> None:
    """Each tab label exists twice (a hidden measuring copy); role=tab is the real one.
    Tab contents render lazily: select the tab before touching its components."""
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name=label, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")


def choose_option(page, elem_id: str, name) -> None:
    """Pick one option of a gr.Dropdown; Escape closes the list, which would otherwise cover
    the components below it."""
    from playwright.sync_api import expect

    page.locator(f"#{elem_id} input[role=combobox]").click()
    page.get_by_role("option", name=name).click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("listbox")).to_have_count(0)
