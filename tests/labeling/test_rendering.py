import pytest

from labeling.rendering import render_markdown


@pytest.mark.parametrize(
    "text",
    [
        "Hello <script>alert('x')</script> world",
        '<img src="x" onerror="alert(1)"> **bold**',
        "<p>a block of raw HTML</p>",
    ],
)
def test_raw_html_in_model_text_arrives_as_text(text):
    html = render_markdown(text)
    assert "<script" not in html and "<img" not in html and "<p>a block" not in html
    assert "&lt;" in html


def test_it_keeps_no_javascript_links_and_no_images():
    html = render_markdown("[link](javascript:alert(1)) ![alt](http://example.com/x.png)")
    assert 'href="javascript' not in html  # the link stays text
    assert "<img" not in html and 'href="http://example.com/x.png"' in html  # the image is a plain link


def test_links_open_without_referrer():
    html = render_markdown("[docs](https://example.com/a)")
    assert 'href="https://example.com/a"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_it_renders_commonmark_with_tables_and_strikethrough():
    html = render_markdown("# Title\n\n1. **one**\n2. `two <x>`\n\n| a | b |\n|---|---|\n| 1 | ~~2~~ |\n\n> quote")
    assert "<h1>Title</h1>" in html
    assert "<ol>" in html and "<strong>one</strong>" in html
    assert "<code>two &lt;x&gt;</code>" in html
    assert "<table>" in html and "<td><s>2</s></td>" in html
    assert "<blockquote>" in html


def test_it_highlights_fenced_code_and_keeps_it_escaped():
    html = render_markdown("```python\nif a < b:\n    print('<&>')\n```")
    assert '<pre><code class="language-python">' in html
    assert '<span class="k">if</span>' in html
    assert "&lt;" in html and "<&>" not in html


def test_code_in_an_unknown_language_stays_plain_and_escaped():
    html = render_markdown("```nosuchlanguage\n<b>bold?</b>\n```")
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert "<span" not in html
