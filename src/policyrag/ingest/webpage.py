"""Saved web pages to report text: the article, without the site's menus, footers, share
buttons and lists of related articles, plus the title and date the page states.

trafilatura finds the main content (and, through htmldate, the publication date) of pages
from sites it has never seen; a government portal's template is different on every site.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# Only dates the page states (meta tags, markup, "发布日期: 2024-03-15"): htmldate's extensive
# search turns a bare "2024年03月15日" into 2024-01-01, worse than no date.
DATE_PARAMS = {"extensive_search": False, "original_date": True}
# How Chinese portals label an article's date, which htmldate does not read.
LABELLED_DATE = re.compile(r"(?:发布|发表|发文|成文|印发)(?:日期|时间)\s*[:：]\s*"
                           r"((?:19|20)\d{2})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")


@dataclass
class Page:
    text: str
    title: str | None = None
    date: str | None = None  # YYYY-MM-DD


def extract_page(markup: str) -> Page:
    """The article with its title as the first line; the tag-stripped page if no article is
    found (a short or unusual page), so no report is lost."""
    import trafilatura

    found = trafilatura.bare_extraction(markup, include_comments=False, include_tables=True,
                                        with_metadata=True, date_extraction_params=DATE_PARAMS)
    body = (found.text or "").strip() if found else ""
    if not body:
        return Page(strip_tags(markup))
    title = _headline(found.title or "")
    # The title leads the text, where metadata.extract_title looks for it and a reader sees it.
    if title and not body.startswith(title):
        body = f"{title}\n{body}"
    return Page(body + "\n", title, found.date or labelled_date(markup))


def labelled_date(markup: str) -> str | None:
    m = LABELLED_DATE.search(strip_tags(markup))
    return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}" if m else None


def _headline(title: str) -> str | None:
    """The page title without the site's name: Chinese portals write "标题_莲都区人民政府",
    a separator trafilatura does not split on (no headline contains "_")."""
    title = title.strip()
    head = title.split("_", 1)[0].strip()
    return (head if len(head) >= 4 else title) or None


def strip_tags(markup: str) -> str:
    """The fallback: every piece of text on the page, tags removed, blocks on their own lines."""
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1>|<!--.*?-->", "", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h\d>|</li>|</tr>", "\n", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", markup))
