import re

import pytest

from topics.markdown import LinkError, LinkErrors, ResolvedLink, render_markdown


def test_headings_get_slugified_ids_and_a_toc():
    rendered = render_markdown("### Retry budgets\n\ntext\n\n#### Per-client caps\n")
    assert '<h3 id="retry-budgets">Retry budgets</h3>' in rendered.html
    assert rendered.toc == [
        {"id": "retry-budgets", "title": "Retry budgets", "level": 3},
        {"id": "per-client-caps", "title": "Per-client caps", "level": 4},
    ]


def test_fenced_code_is_highlighted_with_pygments_classes():
    html = render_markdown("```python\nimport os\n```\n").html
    assert '<span class="kn">import</span>' in html


def test_code_blocks_are_focusable_named_scroll_regions():
    html = render_markdown("```python\ndef f():\n    return 1\n```\n").html
    assert html.startswith('<div class="highlight" role="region" aria-label="Code example" tabindex="0"><pre>')
    assert "\n    <span" in html, "the indentation is kept as it is"
    assert html.rstrip().endswith("</code></pre></div>")


def test_indented_code_blocks_are_scroll_regions_too():
    html = render_markdown("Text\n\n    plain code\n").html
    assert '<div class="highlight" role="region" aria-label="Code example" tabindex="0"><pre>' in html


def test_tables_are_wrapped_in_a_focusable_named_scroll_region():
    html = render_markdown("| a | b |\n| - | - |\n| 1 | 2 |\n").html
    assert html.startswith('<div class="table-scroll" role="region" aria-label="Table" tabindex="0"><table>\n')
    assert html.rstrip().endswith("</table></div>")
    assert html.count("<table>") == html.count("</table></div>") == 1


def test_region_names_come_from_the_nearest_heading_and_stay_unique():
    source = (
        "```\nbefore\n```\n\n"
        "### Retry & backoff\n\n```\none\n```\n\n```\ntwo\n```\n\n"
        "| a | b |\n| - | - |\n| 1 | 2 |\n\n"
        "#### `SET NX` keys\n\n| a | b |\n| - | - |\n| 1 | 2 |\n"
    )
    labels = re.findall(r'role="region" aria-label="([^"]*)"', render_markdown(source).html)
    assert labels == [
        "Code example",
        "Code example: Retry &amp; backoff",
        "Code example: Retry &amp; backoff (2)",
        "Table: Retry &amp; backoff",
        "Table: SET NX keys",
    ]


def test_a_raw_html_table_keeps_its_attributes_inside_the_wrapper():
    html = render_markdown('<table class="x"><tr><td>1</td></tr></table>\n').html
    assert html == (
        '<div class="table-scroll" role="region" aria-label="Table" tabindex="0">'
        '<table class="x"><tr><td>1</td></tr></table></div>'
    )


def test_region_wrappers_stay_out_of_the_search_text():
    rendered = render_markdown("### Cost\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\n```\nx = 1\n```\n")
    assert rendered.text == "Cost a b 1 2 x = 1"


def test_special_links_use_the_resolver_and_get_a_class():
    def resolve(scheme, target):
        return ResolvedLink(f"/{scheme}/{target}", "lab-link")

    html = render_markdown("[try](lab:spike)", resolve=resolve).html
    assert html == '<p id="top--1"><a class="lab-link" href="/lab/spike">try</a></p>'


def test_every_bad_link_is_reported():
    def resolve(scheme, target):
        raise LinkError(f"{scheme}:{target}", "nope")

    with pytest.raises(LinkErrors) as info:
        render_markdown("[a](lab:x) and [b](question:y)", resolve=resolve)
    assert [error.href for error in info.value.errors] == ["lab:x", "question:y"]


def test_ordinary_links_are_left_alone():
    assert 'href="https://example.com/"' in render_markdown("[x](https://example.com/)").html


def test_paragraphs_list_items_and_table_rows_get_stable_ids_under_their_heading():
    source = "Intro.\n\n### Retry budgets\n\nFirst.\n\n- one\n- two\n\n```python\nx = 1\n```\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n"
    rendered = render_markdown(source)
    assert [block["id"] for block in rendered.blocks] == [
        "top--1",
        "retry-budgets--1",
        "retry-budgets--2",
        "retry-budgets--3",
        "retry-budgets--4",
    ]
    assert [block["text"] for block in rendered.blocks] == ["Intro.", "First.", "one", "two", "1 · 2"]
    assert '<li id="retry-budgets--2">one</li>' in rendered.html
    assert '<tr id="retry-budgets--4">' in rendered.html
    assert '<div class="highlight"' in rendered.html  # the code block is left alone, not wrapped in a <p id>
    assert render_markdown(source).html == rendered.html  # same source, same ids
