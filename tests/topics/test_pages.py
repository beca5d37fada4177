import gzip
import re
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import reverse

from prepsite.visitor import ANON_KEY
from sandbox.engine.presets import PRESETS
from tests.conftest import BASE_DIR, worker_env
from tests.topics.conftest import load, section_file, write_content
from topics.loader import DEFAULT_CONTENT_DIR
from topics.models import Question, Section, SectionUnderstood, Topic


def section_titles() -> list[str]:
    """The titles of the queueing sections, in file order, read from the content itself."""
    folder = DEFAULT_CONTENT_DIR / "queueing" / "sections"
    titles = []
    for path in sorted(folder.glob("*.md")):
        front = path.read_text(encoding="utf-8").split("---")[1]
        titles.append(re.search(r"^title:\s*(.+)$", front, flags=re.MULTILINE)[1].strip().strip("\"'"))
    return titles


DRILL_URL = re.compile(r"^/topics/(?P<topic>[\w-]+)/drill/(?P<slug>[\w-]+)/$")


class Links(HTMLParser):
    """Collects ids and hrefs (from <a>, including SVG links) of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.svg_hrefs: list[str] = []
        self._svg = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self._svg += 1
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href") is not None:
            (self.svg_hrefs if self._svg else self.hrefs).append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg -= 1


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_study_with_one_topic_lands_on_its_chapter_list(client, queueing):
    response = client.get(reverse("topics:topic_list"))
    assert response.status_code == 302
    assert response["Location"] == queueing.get_absolute_url()
    html = page(client, response["Location"])
    assert html.count(" min read") == queueing.sections.count()


def test_topic_list_links_to_the_deep_dive_when_there_are_several(client, queueing):
    Topic.objects.create(slug="streams", title="Streams", order=queueing.order + 1)
    html = page(client, reverse("topics:topic_list"))
    assert "<h1>Study</h1>" in html
    assert f'href="{queueing.get_absolute_url()}"' in html
    assert queueing.title in html


def test_overview_lists_every_chapter_in_order_with_its_link_and_reading_time(client, queueing):
    html = page(client, reverse("topics:topic_detail", args=["queueing"]))
    chapters = re.findall(r'<a id="([\w-]+)" href="(/topics/queueing/[\w-]+/)" data-forward>(.*?)</a>', html)
    assert [title for _id, _href, title in chapters] == section_titles()
    sections = list(queueing.sections.in_order())
    assert [href for _id, href, _title in chapters] == [s.get_absolute_url() for s in sections]
    assert [slug for slug, _href, _title in chapters] == [s.slug for s in sections]
    assert html.count(" min read") == len(sections)
    assert sections[1].summary[:60] in html
    assert f"0 of {len(chapters)} chapters understood" in re.sub(r"<[^>]+>", "", personal(client))


def personal(client, section: Section | None = None) -> str:
    """The visitor's own parts of the overview (or of a chapter), which htmx loads after the shared document."""
    if section is not None:
        return page(client, reverse("topics:section_personal", args=["queueing", section.slug]))
    return page(client, reverse("topics:topic_personal", args=["queueing"]))


def test_topic_page_is_one_document_for_every_visitor_with_personal_parts_loaded_after(
    client, queueing, django_user_model
):
    anonymous = client.get("/topics/queueing/")
    user = django_user_model.objects.create_user("zq-member", password="pw-123456")
    member = Client()
    member.force_login(user)
    mark(member, queueing.sections.in_order()[0])
    logged_in = member.get("/topics/queueing/")
    assert anonymous.content == logged_in.content
    html = anonymous.content.decode()
    assert "csrfmiddlewaretoken" not in html
    assert "x-csrftoken" not in html
    assert "zq-member" not in html
    assert anonymous["Cache-Control"] == "public, max-age=60"
    assert not anonymous.cookies
    assert 'hx-get="/topics/queueing/personal/" hx-trigger="load" hx-swap="none"' in html
    # Without JavaScript every placeholder points to a page that works: the checklist and the login.
    sections = queueing.sections.count()
    assert '<noscript> · <a href="/topics/queueing/checklist/">track which you understand</a></noscript>' in html
    assert '<noscript><a href="/accounts/login/">Log in</a></noscript>' in html

    mine = personal(member)
    assert "zq-member" in mine
    assert "Log out" in mine
    assert f"1</strong> of {sections} chapters understood" in mine
    # progress, the one mark to set (the shared page draws every tick empty), nav, messages
    assert mine.count('hx-swap-oob="true"') == 1 + 1 + 3
    assert mine.count('name="csrfmiddlewaretoken"') == 1  # the logout button: the overview has no mark forms
    assert "✓ Understood" not in personal(client, queueing.sections.in_order()[0])
    assert "✓ Understood" in personal(member, queueing.sections.in_order()[0])
    assert member.get(reverse("topics:topic_personal", args=["queueing"]))["Cache-Control"].startswith("max-age=0")


def test_topic_page_is_gzipped_once_and_answers_304_to_a_matching_etag(client, queueing):
    plain = client.get("/topics/queueing/")
    zipped = client.get("/topics/queueing/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content) / 3
    assert "Accept-Encoding" in plain["Vary"]
    assert plain["ETag"] != zipped["ETag"]
    again = client.get("/topics/queueing/", HTTP_IF_NONE_MATCH=plain["ETag"])
    assert again.status_code == 304
    assert not again.content


def test_reloaded_content_shows_at_once_though_the_page_is_cached(client, demo, tmp_path):
    url = reverse("topics:topic_detail", args=[demo.slug])
    before = page(client, url)
    Section.objects.filter(topic=demo).update(title="Changed behind the cache's back")
    assert page(client, url) == before  # served from the cache, not re-rendered
    write_content(tmp_path / "content", sections={"01-basics.md": section_file("basics", "Basics, revised", 1, "New.")})
    load(tmp_path / "content")
    assert "Basics, revised" in page(client, url)


def test_overview_indexes_every_heading_with_a_link_into_its_chapter(client, queueing):
    html = page(client, reverse("topics:topic_detail", args=["queueing"]))
    links = Links(html)
    for section in queueing.sections.all():
        assert section.get_absolute_url() in links.hrefs
        for entry in section.toc:
            assert entry["id"] in links.ids
            assert f"{section.get_absolute_url()}#{entry['id']}" in links.hrefs


def test_unknown_topic_is_404(client, queueing):
    assert client.get("/topics/no-such-topic/").status_code == 404


def test_diagram_is_an_accessible_svg_whose_links_resolve(client, queueing):
    html = page(client, reverse("topics:topic_detail", args=["queueing"]))
    main = html.split("<main", 1)[1]  # the header's search icon is an svg too
    svg = re.search(r"<svg[^>]*>.*?</svg>", main, flags=re.DOTALL)[0]
    assert 'aria-labelledby="diagram-title diagram-desc"' in svg
    assert 'role="img"' not in svg  # it holds links: an image role would hide them from screen readers
    assert "<title id=" in svg
    assert "<desc id=" in svg
    for label in ("Client", "Gateway", "Service", "Cache", "DB", "Queue", "Workers", "DLQ"):
        assert f'class="label">{label}</text>' in svg
    links = Links(html)
    anchors = [href for href in links.svg_hrefs if href.startswith("/topics/queueing/") and "drill" not in href]
    assert len(anchors) == 8  # one per node, each to a chapter (and a heading in it)
    for href in anchors:
        path, _, fragment = href.partition("#")
        chapter = Links(page(client, path))
        assert not fragment or fragment in chapter.ids, href
    lab_links = [href for href in links.svg_hrefs if href.startswith("/sandbox/")]
    assert sorted(lab_links) == ["/sandbox/?preset=crash", "/sandbox/?preset=poison", "/sandbox/?preset=spike"]
    for href in lab_links:
        assert client.get(href).status_code == 200


def test_chapter_lists_its_drill_questions(client, queueing):
    question = Question.objects.filter(topic=queueing).select_related("section").first()
    html = page(client, question.section.get_absolute_url())
    drills = re.search(r'<aside class="related-drills".*?</aside>', html, flags=re.DOTALL)[0]
    assert f'href="/topics/queueing/drill/{question.slug}/"' in drills


def check_links(client, url: str, html: str, *, checked: dict) -> None:
    """Every internal link of `html` (found on `url`) resolves: pages 200, anchors exist."""
    base_path = urlsplit(url).path
    for href in Links(html).hrefs + Links(html).svg_hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("mailto:"):
            continue
        path = parts.path or base_path
        if match := DRILL_URL.match(path):
            # The Drills app serves these; the question must exist.
            assert Question.objects.filter(topic__slug=match["topic"], slug=match["slug"]).exists(), href
            continue
        if path == reverse("sandbox:home") and parts.query:
            assert re.fullmatch(r"preset=([\w-]+)", parts.query), href
            assert parts.query.removeprefix("preset=") in PRESETS, href
        target = path + (f"?{parts.query}" if parts.query else "")
        if target not in checked:
            response = client.get(target, follow=True)  # Study's /topics/ redirects to the one topic
            assert response.status_code == 200, f"{href} on {url} -> {response.status_code}"
            assert all(hop.startswith("/") for hop, _status in response.redirect_chain), href
            content_type = response.get("Content-Type", "")
            checked[target] = Links(response.content.decode()).ids if "html" in content_type else set()
        if parts.fragment:
            assert parts.fragment in checked[target], f"{href} on {url}: no element with that id"


def test_link_checker_finds_no_broken_internal_links(client, queueing):
    checked: dict = {}
    for url in ("/topics/queueing/", "/search/?q=retry", "/topics/queueing/checklist/"):
        check_links(client, url, page(client, url), checked=checked)
    for section in Section.objects.filter(topic=queueing):
        url = section.get_absolute_url()
        check_links(client, url, page(client, url), checked=checked)
    for question in Question.objects.filter(topic=queueing):
        check_links(client, "/topics/queueing/", question.answer_html, checked=checked)


def test_every_preset_used_by_loaded_questions_is_known(queueing):
    used = set(Question.objects.exclude(preset="").values_list("preset", flat=True))
    assert used <= set(PRESETS)


def mark(client, section: Section, value: str = "1", **headers):
    url = reverse("topics:mark_understood", args=[section.topic.slug, section.slug])
    return client.post(url, {"understood": value}, **headers)


def test_mark_understood_from_the_checklist_without_js_redirects_back_to_it(client, queueing):
    section = queueing.sections.in_order()[2]
    response = client.post(
        reverse("topics:mark_understood", args=["queueing", section.slug]), {"understood": "1", "back": "checklist"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/topics/queueing/checklist/#{section.slug}"
    html = page(client, response["Location"])
    assert f'<li id="{section.slug}">' in html
    form = re.search(rf'<form id="understood-{section.slug}".*?</form>', html, flags=re.DOTALL)[0]
    assert "✓ Understood" in form
    assert f"1 of {queueing.sections.count()} chapters understood" in re.sub(r"<[^>]+>", "", html)


def test_mark_understood_with_htmx_returns_only_the_button_fragment(client, queueing):
    section = queueing.sections.in_order()[0]
    response = mark(client, section, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert html.strip().startswith(f'<form id="understood-{section.slug}"')
    assert "✓ Understood" in html
    assert 'id="progress" class="study-progress" hx-swap-oob="true"' in html
    assert f"1</strong> of {queueing.sections.count()} chapters understood" in html
    assert f'id="toc-check-{section.slug}" class="toc-check" hx-swap-oob="true"><span title="understood">✓' in html


def test_unmarking_clears_the_mark(client, queueing):
    section = queueing.sections.in_order()[0]
    mark(client, section)
    assert "✓ Understood" in personal(client, section)
    mark(client, section, "0")
    assert not SectionUnderstood.objects.exists()
    assert "✓ Understood" not in personal(client, section)


def test_mark_understood_rejects_bad_input_and_unknown_sections(client, queueing):
    section = queueing.sections.in_order()[0]
    assert mark(client, section, "maybe").status_code == 404
    url = reverse("topics:mark_understood", args=["queueing", section.slug])
    assert client.post(url, {"understood": "1", "back": "https://evil.example/"}).status_code == 404
    url = reverse("topics:mark_understood", args=["queueing", "no-such-section"])
    assert client.post(url, {"understood": "1"}).status_code == 404
    assert client.get(reverse("topics:mark_understood", args=["queueing", section.slug])).status_code == 405
    assert not SectionUnderstood.objects.exists()


@pytest.mark.django_db(transaction=True)  # committed for real, so closing connections loses nothing
def test_understood_mark_persists_for_a_new_client_with_only_the_session_cookie(client, queueing):
    section = queueing.sections.in_order()[4]
    mark(client, section)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    anon_id = client.session[ANON_KEY]
    row = SectionUnderstood.objects.get()
    assert row.anon_id == anon_id
    assert row.user is None
    assert row.section == section

    connections.close_all()  # nothing cached in a connection survives: the next request reads the database
    returning = Client()
    returning.cookies[settings.SESSION_COOKIE_NAME] = session_key
    html = personal(returning, section)
    assert "✓ Understood" in html
    assert f"1 of {queueing.sections.count()} chapters understood" in re.sub(r"<[^>]+>", "", html)

    stranger = personal(Client(), section)
    assert "✓ Understood" not in stranger

    # A separate process (as a restarted server would be) reads the same mark from the database.
    code = (
        "from django.contrib.sessions.models import Session; from topics.models import SectionUnderstood; "
        f"assert Session.objects.filter(session_key='{session_key}').exists(); "
        f"print(SectionUnderstood.objects.filter(anon_id='{anon_id}').values_list('section__slug', flat=True)[0])"
    )
    env = worker_env(connections["default"].settings_dict)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == section.slug


def test_logged_in_marks_are_keyed_to_the_user(client, queueing, django_user_model):
    user = django_user_model.objects.create_user("reader", password="pw-123456")
    client.force_login(user)
    section = queueing.sections.in_order()[1]
    mark(client, section)
    assert SectionUnderstood.objects.get().user == user
    other = Client()
    other.force_login(user)
    assert "✓ Understood" in personal(other, section)


def test_marks_made_before_logging_in_move_to_the_account(client, queueing, django_user_model):
    django_user_model.objects.create_user("reader", password="pw-123456")
    first, second = queueing.sections.in_order()[:2]
    mark(client, first)
    mark(client, second)
    client.post(reverse("login"), {"username": "reader", "password": "pw-123456"})
    assert set(SectionUnderstood.objects.values_list("user__username", "anon_id")) == {("reader", "")}
    assert SectionUnderstood.objects.count() == 2
    assert f"2 of {queueing.sections.count()} chapters understood" in re.sub(r"<[^>]+>", "", personal(client))
