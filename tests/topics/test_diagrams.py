"""The Study chapters' SVG diagrams (issue #14): accessible, linked to the Lab, intact after rendering, readable
on a phone.

The figures are raw HTML inside the section Markdown, so these tests read what the loader stored (and what a
browser draws), not the source files.
"""

import re
from xml.etree import ElementTree

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from playwright.sync_api import expect

from sandbox.engine.presets import PRESETS
from tests.conftest import ARTIFACTS
from topics.models import Section

SVG = "{http://www.w3.org/2000/svg}"
FIGURE = re.compile(r"<figure\b[^>]*>.*?</figure>", re.DOTALL)
ID = re.compile(r'\sid="([^"]+)"')
# Each diagram, the section that teaches it, and the Lab preset linked right after it (None: no preset shows it).
DIAGRAMS = {
    "lease-expiry": ("core-concepts", "duplicates"),
    "outbox": ("data-and-request-flow", "duplicates"),
    "utilisation-latency": ("scalability-and-reliability", "slow-consumer"),
    "retry-waves": ("scalability-and-reliability", "retry-storm"),
    "rebalance": ("broker-internals", None),
    "saga": ("workflows", None),
    # Issue #24: the staff chapter's four.
    "shuffle-sharding": ("staff-depth", None),
    "multi-region": ("staff-depth", None),
    "parallel-per-key": ("staff-depth", "ordering"),
    "zombie-fencing": ("staff-depth", "visibility-timeout"),
}
PHONE, DESKTOP = 390, 1280
MIN_TEXT_PX = 12


def figures(section: Section) -> list[tuple[ElementTree.Element, str]]:
    """Each figure in the section's stored HTML, parsed, with the HTML that follows it."""
    found = []
    for match in FIGURE.finditer(section.body_html):
        found.append((ElementTree.fromstring(match[0]), section.body_html[match.end() :]))
    return found


def all_diagrams(topic) -> dict[str, tuple[Section, ElementTree.Element, str]]:
    diagrams = {}
    for section in topic.sections.in_order():
        for figure, after in figures(section):
            svg = figure.find(f"{SVG}svg")
            if svg is not None and svg.get("role") == "img":
                name = figure.get("id").removesuffix("-figure")
                assert name not in diagrams, f"two figures named {name}"
                diagrams[name] = (section, figure, after)
    return diagrams


def text_of(element: ElementTree.Element | None) -> str:
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip() if element is not None else ""


def test_each_required_diagram_sits_in_the_section_that_teaches_it(queueing):
    diagrams = all_diagrams(queueing)
    assert len(diagrams) >= 10
    for name, (section_slug, _preset) in DIAGRAMS.items():
        assert name in diagrams, f"missing diagram {name}"
        assert diagrams[name][0].slug == section_slug


def test_every_diagram_is_labelled_by_its_own_title_and_description(queueing):
    for name, (section, figure, _after) in all_diagrams(queueing).items():
        svg = figure.find(f"{SVG}svg")
        title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
        assert title is not None, name
        assert desc is not None, name
        # The svg is named by its own title and described by its own desc, in that order.
        assert svg.get("aria-labelledby").split() == [title.get("id"), desc.get("id")], name
        assert all(part.startswith(name) for part in (title.get("id"), desc.get("id"))), name
        # Non-trivial: a title says what the picture is; the desc tells the same lesson in words.
        assert len(text_of(title).split()) >= 6, name
        assert len(text_of(desc).split()) >= 60, name
        assert len(text_of(figure.find("figcaption")).split()) >= 12, name
        # Scales with its column: a viewBox, width 100%, no fixed height.
        assert re.fullmatch(r"0 0 \d+ \d+", svg.get("viewBox")), name
        assert svg.get("width") == "100%", name
        assert svg.get("height") is None, name


def test_every_diagram_is_self_contained_under_the_sites_csp(queueing):
    """The CSP allows no inline style and nothing from elsewhere: presentation attributes only."""
    for name, (_section, figure, _after) in all_diagrams(queueing).items():
        for element in figure.iter():
            assert element.tag not in (f"{SVG}style", f"{SVG}image", f"{SVG}script", f"{SVG}foreignObject"), name
            assert "style" not in element.attrib, name
            for attribute in ("href", "{http://www.w3.org/1999/xlink}href"):
                assert not element.get(attribute, "").startswith(("http", "//")), name
        # Every url(#…) reference (markers, patterns) points at an element of this same svg.
        own = {element.get("id") for element in figure.iter() if element.get("id")}
        used = set(re.findall(r"url\(#([^)]+)\)", ElementTree.tostring(figure, encoding="unicode")))
        assert used <= own, f"{name} refers to {used - own}"
        assert all(identifier.startswith(name) for identifier in own), f"{name} ids must carry its prefix: {own}"


def test_each_diagram_is_followed_by_its_resolved_lab_link(queueing):
    lab = reverse("sandbox:home")
    for name, (_section, _figure, after) in all_diagrams(queueing).items():
        preset = DIAGRAMS[name][1]
        following = re.match(r"\s*<p\b[^>]*>(.*?)</p>", after, re.DOTALL)
        if preset is None:
            assert not (following and "lab-link" in following[1]), f"{name} claims a Lab preset it has none of"
            continue
        assert preset in PRESETS
        assert following, f"no paragraph after {name}"
        assert f'href="{lab}?preset={preset}"' in following[1], f"{name} is not followed by its Lab link"
        assert 'class="lab-link"' in following[1]


def test_diagram_ids_are_unique_across_every_section_and_the_topic_diagram(queueing):
    """A diagram's ids clash with no id anywhere in the topic (so chapters can share a page again), and no
    chapter repeats an id. (Paragraph ids such as "top--1" repeat from chapter to chapter by design.)"""
    pages = {section.slug: section.body_html for section in queueing.sections.in_order()}
    pages |= {"topic diagram": queueing.diagram_html, "intro": queueing.intro_html}
    for where, html in pages.items():
        ids = ID.findall(html)
        assert len(ids) == len(set(ids)), f"{where} repeats an id"
    diagram_ids = [
        (section.slug, element.get("id"))
        for section, figure, _after in all_diagrams(queueing).values()
        for element in figure.iter()
        if element.get("id")
    ]
    for slug, identifier in diagram_ids:
        owners = [where for where, html in pages.items() if identifier in ID.findall(html)]
        assert owners == [slug], f"id {identifier!r} of a diagram in {slug} is also used in {owners}"


def test_the_utilisation_curve_plots_computed_mm1_points(queueing):
    """W = S / (1 - rho) with S = 150 ms, at the table's utilisations, each point labelled with its value."""
    _section, figure, _after = all_diagrams(queueing)["utilisation-latency"]
    points = {float(c.get("data-rho")): int(c.get("data-w-ms")) for c in figure.iter(f"{SVG}circle")}
    assert sorted(points) == [0.5, 0.7, 0.8, 0.9, 0.95]
    labels = {text_of(t) for t in figure.iter(f"{SVG}text")}
    for rho, w_ms in points.items():
        assert w_ms == round(150 / (1 - rho))
        assert (f"{w_ms} ms" if w_ms < 1000 else f"{w_ms / 1000:.1f} s") in labels
    # Higher utilisation is drawn higher (smaller y) and further right.
    ordered = sorted(figure.iter(f"{SVG}circle"), key=lambda c: float(c.get("data-rho")))
    assert [float(c.get("cx")) for c in ordered] == sorted(float(c.get("cx")) for c in ordered)
    assert [float(c.get("cy")) for c in ordered] == sorted((float(c.get("cy")) for c in ordered), reverse=True)
    assert "knee" in " ".join(labels)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_diagrams_are_named_intact_and_readable_on_a_phone_and_a_desktop(live_server, browser, queueing, width):
    """Each chapter with a diagram, drawn by Chromium at 1280 and 390 px: a screenshot of every figure, its
    accessible name from the title, no text smaller than 12 px, nothing wider than the screen, and no axe
    violations inside the figures."""
    diagrams = all_diagrams(queueing)
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    axe = Axe()
    measured = []
    # axe-core is injected as a script, so its context bypasses the site's CSP (as in test_accessibility).
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    for section in {section for section, _figure, _after in diagrams.values()}:
        page.goto(live_server.url + section.get_absolute_url())
        for name, (owner, figure, _after) in diagrams.items():
            if owner != section:
                continue
            title = text_of(figure.find(f"{SVG}svg/{SVG}title"))
            svg = page.get_by_role("img", name=title)
            expect(svg).to_have_count(1)
            svg.scroll_into_view_if_needed()
            box = svg.bounding_box()
            assert box["x"] >= 0, f"{name} starts off screen at {width}px"
            assert box["x"] + box["width"] <= width, f"{name} overflows at {width}px"
            smallest, clipped = page.evaluate(
                """svg => {
                    const view = svg.viewBox.baseVal, scale = svg.getBoundingClientRect().width / view.width;
                    const texts = [...svg.querySelectorAll("text")];
                    const sizes = texts.map(t => parseFloat(getComputedStyle(t).fontSize));
                    const outside = texts.filter(t => { const b = t.getBBox();
                        return b.x < -0.5 || b.y < -0.5 || b.x + b.width > view.width + 0.5 || b.y + b.height > view.height + 0.5; });
                    return [Math.min(...sizes) * scale, outside.map(t => t.textContent)];
                }""",
                svg.element_handle(),
            )
            assert clipped == [], f"{name} text runs outside its viewBox at {width}px: {clipped}"
            measured.append(f"{name} @ {width}px: {box['width']:.0f}x{box['height']:.0f}, text >= {smallest:.1f}px")
            assert smallest >= MIN_TEXT_PX, f"{name} text is {smallest:.1f}px at {width}px"
            page.locator(f"#{name}-figure").screenshot(path=str(folder / f"diagram-{name}-{width}.png"))
        violations = axe.run(page, context=".prose figure").response["violations"]
        assert violations == [], [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]
    context.close()
    print("\n" + "\n".join(measured))
