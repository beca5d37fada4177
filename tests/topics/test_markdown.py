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
    assert '<div class="highlight">' in html
    assert '<span class="kn">import</span>' in html


def test_tables_render():
    assert "<table>" in render_markdown("| a | b |\n| - | - |\n| 1 | 2 |\n").html


def test_special_links_use_the_resolver_and_get_a_class():
    def resolve(scheme, target):
        return ResolvedLink(f"/{scheme}/{target}", "lab-link")

    html = render_markdown("[try](lab:spike)", resolve=resolve).html
    assert html == '<p><a class="lab-link" href="/lab/spike">try</a></p>'


def test_every_bad_link_is_reported():
    def resolve(scheme, target):
        raise LinkError(f"{scheme}:{target}", "nope")

    with pytest.raises(LinkErrors) as info:
        render_markdown("[a](lab:x) and [b](question:y)", resolve=resolve)
    assert [error.href for error in info.value.errors] == ["lab:x", "question:y"]


def test_ordinary_links_are_left_alone():
    assert 'href="https://example.com/"' in render_markdown("[x](https://example.com/)").html
