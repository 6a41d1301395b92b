"""Markdown to safe HTML, for model text, prompts and guidelines.

Model output is untrusted input. It is rendered with raw HTML disabled (so ``<script>``
arrives as text), code blocks are highlighted by Pygments on the server, and the result
is sanitized with an allow-list (nh3) as a second line of defence: no scripts, no event
handlers, no images (which would call out of the reviewer's browser), links only to
http(s) and mailto, opened with ``rel="noopener noreferrer nofollow"``.

The parser is markdown-it's Rust port (``markdown-it-pyrs``): CommonMark plus tables and
strikethrough, about fifty times faster than the Python one, which matters because every
task a reviewer is handed renders its responses. It has no highlighting hook, so fenced
code is highlighted after rendering, from the escaped code it wrote.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import nh3
from markdown_it_pyrs import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "div", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "div": {"class"}, "code": {"class"}, "ol": {"start"}}
# CommonMark without raw HTML (html_block, html_inline) or images, plus tables and strikethrough.
MARKDOWN_RULES = [
    "blockquote", "code", "fence", "heading", "hr", "lheading", "list", "paragraph", "reference",
    "autolink", "backticks", "emphasis", "entity", "escape", "link", "newline", "table", "strikethrough",
]  # fmt: skip
_CODE_BLOCK = re.compile(r'<pre><code(?: class="language-([^"]*)")?>(.*?)</code></pre>', re.DOTALL)
_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str) -> str | None:
    """Pygments HTML for ``code``; None when the language is unknown (the code stays as escaped)."""
    try:
        lexer = _lexer(language) if language else guess_lexer(code)
    except ClassNotFound:
        return None
    return highlight(code, lexer, _formatter)


@lru_cache(maxsize=128)
def _lexer(language: str) -> Lexer:
    """The lexer for a language name, made once: making one costs a third of highlighting a short block.
    A lexer keeps no state between texts, so threads share it."""
    return get_lexer_by_name(language)


def _highlight_block(block: re.Match[str]) -> str:
    """A rendered ``<pre><code>`` block with its code highlighted, or as it was."""
    language, escaped_code = block.group(1) or "", block.group(2)
    highlighted = _highlight(html.unescape(escaped_code), html.unescape(language))
    if highlighted is None:
        return block.group(0)
    opening_tags = block.group(0)[: block.start(2) - block.start(0)]
    return f"{opening_tags}{highlighted}</code></pre>"


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("zero").enable_many(MARKDOWN_RULES)


# Responses are rendered once and stored (``Response.html``, ``labeling.services.prerender``),
# tagged with this version. Bump it whenever what the rendering makes changes (Markdown rules,
# highlighting, the allow-list): HTML stored by another version is then rendered anew, and
# until then rendered when shown. The index of responses to render depends on it, so a bump
# comes with a migration (makemigrations writes it).
RENDERER_VERSION = 1

# Each response is shown to several reviewers (the campaign's overlap); render it once per
# process. Long texts are not cached, to keep the cache's memory small.
CACHED_TEXT_CHARS = 20_000


def render_markdown(text: str, *, cache: bool = True) -> str:
    """Safe HTML for ``text``, with code blocks highlighted.

    ``cache=False`` for a text rendered once, to keep it out of the cache (the background pass).
    """
    text = text or ""
    if cache and len(text) <= CACHED_TEXT_CHARS:
        return _render_cached(text)
    return _render(text)


@lru_cache(maxsize=4096)
def _render_cached(text: str) -> str:
    return _render(text)


def _render(text: str) -> str:
    rendered = _CODE_BLOCK.sub(_highlight_block, _markdown().render(text))
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def highlight_css() -> str:
    """Pygments colours for ``.highlight`` code blocks (served by the workspace page)."""
    return _formatter.get_style_defs("pre code")
