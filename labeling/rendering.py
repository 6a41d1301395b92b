"""Markdown to safe HTML, for model text, prompts and guidelines.

Model output is untrusted input. It is rendered with raw HTML disabled (so ``<script>``
arrives as text), code blocks are highlighted by Pygments on the server, and the result
is sanitized with an allow-list (nh3) as a second line of defence: no scripts, no event
handlers, no images (which would call out of the reviewer's browser), links only to
http(s) and mailto, opened with ``rel="noopener noreferrer nofollow"``.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "div", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "div": {"class"}, "code": {"class"}, "ol": {"start"}}
_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str, _attributes: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else guess_lexer(code)
    except ClassNotFound:
        return ""  # markdown-it escapes the code itself
    return highlight(code, lexer, _formatter)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return (
        MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "highlight": _highlight})
        .enable("table")
        .enable("strikethrough")
        .disable("image")
    )


# Each response is shown to several reviewers (the campaign's overlap); render it once per
# process. Long texts are not cached, to keep the cache's memory small.
CACHED_TEXT_CHARS = 20_000


def render_markdown(text: str) -> str:
    """Safe HTML for ``text``, with code blocks highlighted."""
    text = text or ""
    if len(text) <= CACHED_TEXT_CHARS:
        return _render_cached(text)
    return _render(text)


@lru_cache(maxsize=4096)
def _render_cached(text: str) -> str:
    return _render(text)


def _render(text: str) -> str:
    html = _markdown().render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def highlight_css() -> str:
    """Pygments colours for ``.highlight`` code blocks (served by the workspace page)."""
    return _formatter.get_style_defs("pre code")
