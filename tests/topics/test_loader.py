import re

import pytest
from django.core.management.base import CommandError

from sandbox.engine.presets import PRESETS
from topics.loader import DEFAULT_CONTENT_DIR
from topics.models import Question, Section, Topic

from .conftest import load, question_file, section_file, write_content


def snapshot() -> dict:
    return {
        "topics": sorted(Topic.objects.values_list("id", "slug")),
        "sections": sorted(Section.objects.values_list("id", "slug")),
        "questions": sorted(Question.objects.values_list("id", "slug")),
    }


@pytest.mark.django_db
def test_loading_real_content_twice_keeps_row_counts_and_ids():
    first_output = load()
    first = snapshot()
    second_output = load()
    assert snapshot() == first
    files = DEFAULT_CONTENT_DIR / "queueing"
    sections, questions = len(list(files.glob("sections/*.md"))), len(list(files.glob("questions/*.md")))
    assert (len(first["sections"]), len(first["questions"])) == (sections, questions)
    assert re.fullmatch(
        rf"queueing: {sections} sections, {questions} questions \(\d+ created, 0 updated, \d+ unchanged\)\n",
        first_output,
    )
    assert "(0 created, 0 updated," in second_output


@pytest.mark.django_db
def test_load_stores_rendered_html_toc_and_plain_text(demo):
    basics = Section.objects.get(topic=demo, slug="basics")
    assert '<h3 id="retry-budgets">Retry budgets</h3>' in basics.body_html
    assert basics.toc == [{"id": "retry-budgets", "title": "Retry budgets", "level": 3}]
    assert "zanzibar protocol" in basics.body_text
    assert "<" not in basics.body_text
    advanced = Section.objects.get(topic=demo, slug="advanced")
    assert 'class="highlight"' in advanced.body_html
    assert "<table>" in advanced.body_html


@pytest.mark.django_db
def test_special_links_are_rewritten_to_site_urls(demo):
    html = Section.objects.get(topic=demo, slug="basics").body_html
    assert 'href="/sandbox/?preset=poison"' in html
    assert 'class="lab-link"' in html
    assert 'href="/topics/demo/advanced/#fan-out"' in html
    assert 'href="/topics/demo/drill/why-queues/"' in html


@pytest.mark.django_db
def test_question_fields_are_loaded(demo):
    question = Question.objects.get(topic=demo, slug="why-queues")
    assert question.prompt == "Why put work behind a queue?"
    assert question.level == "senior"
    assert question.section.slug == "basics"
    assert question.preset == "spike"
    assert question.key_points[0] == {"label": "One", "phrases": ["alpha"]}
    assert question.followups == ["And then?"]
    assert question.answer_html == '<p id="top--1">Because bursts.</p>'


@pytest.mark.django_db
def test_changed_file_updates_row_and_removed_file_deletes_it(tmp_path):
    root = write_content(tmp_path / "c")
    load(root)
    basics_id = Section.objects.get(slug="basics").id
    write_content(
        root,
        sections={"01-basics.md": section_file("basics", "Basics, revised", 1, "New body.")},
        questions={"why-queues.md": None},
    )
    output = load(root)
    assert "1 updated" in output
    assert "1 deleted" in output
    basics = Section.objects.get(slug="basics")
    assert basics.id == basics_id
    assert basics.title == "Basics, revised"
    assert not Question.objects.filter(slug="why-queues").exists()


def problem(tmp_path, **overrides) -> str:
    root = write_content(tmp_path / "c", **overrides)
    with pytest.raises(CommandError) as info:
        load(root)
    return str(info.value)


@pytest.mark.django_db
def test_missing_title_names_file_and_line(tmp_path):
    message = problem(tmp_path, sections={"01-basics.md": "---\nslug: basics\norder: 1\n---\nBody.\n"})
    assert "01-basics.md:1: missing title" in message


@pytest.mark.django_db
def test_missing_prompt_names_file(tmp_path):
    text = question_file("why-queues", "x", "basics", "Body.").replace('prompt: "x"\n', "")
    assert "why-queues.md:1: missing prompt" in problem(tmp_path, questions={"why-queues.md": text})


@pytest.mark.django_db
def test_unknown_link_target_names_file_and_line(tmp_path):
    body = "Line one.\n\nLine three with [a link](section:nowhere).\n"
    message = problem(tmp_path, sections={"02-advanced.md": section_file("advanced", "Advanced", 2, body)})
    # Front matter is lines 1-5, so the body's third line is line 8.
    assert "02-advanced.md:8: unknown section 'nowhere'" in message


@pytest.mark.django_db
def test_unknown_heading_anchor_is_rejected(tmp_path):
    body = "See [it](section:basics#no-such-heading)."
    message = problem(tmp_path, sections={"02-advanced.md": section_file("advanced", "Advanced", 2, body)})
    assert "02-advanced.md:6:" in message
    assert "no heading with anchor 'no-such-heading'" in message


@pytest.mark.django_db
def test_unknown_lab_and_question_links_are_rejected(tmp_path):
    body = "Try [x](lab:nonsense).\n\nDrill [y](question:missing)."
    message = problem(tmp_path, sections={"02-advanced.md": section_file("advanced", "Advanced", 2, body)})
    assert "02-advanced.md:6: unknown Lab preset 'nonsense'" in message
    assert "02-advanced.md:8: unknown question 'missing'" in message


@pytest.mark.django_db
def test_duplicate_slug_names_file_and_line(tmp_path):
    message = problem(tmp_path, sections={"03-again.md": section_file("basics", "Again", 3, "Body.")})
    assert "03-again.md:3: duplicate section slug 'basics'" in message


@pytest.mark.django_db
def test_unknown_preset_names_file_and_line(tmp_path):
    text = question_file("why-queues", "Why?", "basics", "Body.", preset="made-up")
    message = problem(tmp_path, questions={"why-queues.md": text})
    assert "why-queues.md:6: unknown preset 'made-up'" in message


@pytest.mark.django_db
def test_unknown_section_and_level_in_question_are_rejected(tmp_path):
    text = question_file("why-queues", "Why?", "nope", "Body.").replace("level: senior", "level: wizard")
    message = problem(tmp_path, questions={"why-queues.md": text})
    assert "why-queues.md:4: unknown level 'wizard'" in message
    assert "why-queues.md:5: unknown section slug 'nope'" in message


@pytest.mark.django_db
def test_key_point_and_followup_counts_are_bounded(tmp_path):
    text = question_file("why-queues", "Why?", "basics", "Body.", extra="")
    too_few = re.sub(r'  - label: "Four"\n    phrases: \["delta"\]\n', "", text)
    no_followups = text.replace('followups:\n  - "And then?"\n', "followups: []\n")
    message = problem(
        tmp_path, questions={"why-queues.md": too_few, "second.md": no_followups.replace("why-queues", "second")}
    )
    assert "why-queues.md:6: key_points needs 4-8 items (found 3)" in message
    assert "second.md:" in message
    assert "followups needs 1-3 items (found 0)" in message


@pytest.mark.django_db
def test_bad_yaml_is_reported_with_its_line(tmp_path):
    message = problem(tmp_path, sections={"01-basics.md": "---\ntitle: Basics\nslug: [unclosed\n---\nBody.\n"})
    assert "01-basics.md:" in message
    assert "invalid YAML" in message


@pytest.mark.django_db
def test_malformed_file_leaves_database_untouched(tmp_path):
    root = write_content(tmp_path / "c")
    load(root)
    before = snapshot()
    titles = list(Section.objects.values_list("title", flat=True))
    write_content(
        root,
        sections={
            "01-basics.md": section_file("basics", "Changed title", 1, "Changed."),
            "02-advanced.md": section_file("advanced", "Advanced", 2, "[bad](lab:nope)"),
        },
    )
    with pytest.raises(CommandError):
        load(root)
    assert snapshot() == before
    assert list(Section.objects.values_list("title", flat=True)) == titles


def test_every_preset_named_in_content_is_a_known_lab_preset():
    used = set()
    for path in DEFAULT_CONTENT_DIR.rglob("*.md"):
        text = path.read_text()
        used |= set(re.findall(r"\]\(lab:([^)\s]+)\)", text))
        used |= set(re.findall(r"^preset:\s*([\w-]+)\s*$", text, flags=re.MULTILINE))
    assert used, "content names no presets at all"
    assert used <= set(PRESETS), f"unknown presets: {sorted(used - set(PRESETS))}"


@pytest.mark.django_db
def test_reference_style_special_links_are_checked_too(tmp_path):
    body = "Read [this][ref].\n\n[ref]: question:nowhere\n"
    message = problem(tmp_path, sections={"02-advanced.md": section_file("advanced", "Advanced", 2, body)})
    assert "02-advanced.md:8: unknown question 'nowhere'" in message


@pytest.mark.django_db
def test_a_topic_diagram_is_loaded_from_its_folder_with_links_resolved(tmp_path):
    root = write_content(tmp_path / "c")
    (root / "demo" / "diagram.html").write_text(
        '<figure id="diagram"><svg aria-labelledby="t"><title id="t">Demo</title>\n'
        '<a href="section:advanced#fan-out">Fan</a> <a href="lab:spike">spike</a></svg></figure>\n'
    )
    load(root)
    html = Topic.objects.get(slug="demo").diagram_html
    assert 'href="/topics/demo/advanced/#fan-out"' in html
    assert 'href="/sandbox/?preset=spike"' in html


@pytest.mark.django_db
def test_a_bad_diagram_link_names_the_file_and_line(tmp_path):
    root = write_content(tmp_path / "c")
    (root / "demo" / "diagram.html").write_text('<svg>\n<a href="section:advanced#nope">x</a></svg>\n')
    with pytest.raises(CommandError) as error:
        load(root)
    assert "diagram.html:2: section 'advanced' has no heading with anchor 'nope'" in str(error.value)


@pytest.mark.django_db
def test_lab_preset_names_come_from_the_caller_not_from_the_lab(tmp_path):
    from topics.loader import ContentError, content_load

    root = write_content(tmp_path / "c")
    with pytest.raises(ContentError, match="unknown Lab preset 'poison'"):
        content_load(path=root, lab_presets={"spike"})
    content_load(path=root, lab_presets={"spike", "poison"})
    assert Topic.objects.filter(slug="demo").exists()


@pytest.mark.django_db
def test_curveballs_are_topic_content_and_name_real_presets(tmp_path):
    root = write_content(tmp_path / "c")
    topic_md = root / "demo" / "topic.md"
    good = 'curveballs:\n  - text: "Queue age is 4 minutes?"\n    preset: spike\n    label: spike\n'
    topic_md.write_text(topic_md.read_text().replace("order: 1\n", "order: 1\n" + good))
    load(root)
    assert Topic.objects.get(slug="demo").curveballs == [
        {"text": "Queue age is 4 minutes?", "preset": "spike", "label": "spike"}
    ]
    topic_md.write_text(topic_md.read_text().replace("preset: spike", "preset: nonsense"))
    with pytest.raises(CommandError, match="curveball names unknown Lab preset 'nonsense'"):
        load(root)


@pytest.mark.django_db
def test_a_question_heading_is_checked_against_its_section(tmp_path):
    text = question_file("why-queues", "Why queues?", "basics", "Because.", extra="heading: retry-budget\n")
    message = problem(tmp_path, questions={"why-queues.md": text})
    # The front matter's `heading:` is line 17 (after the rubric's 12 lines and the follow-up).
    assert "why-queues.md:17: section 'basics' has no heading 'retry-budget' (did you mean 'retry-budgets'?)" in message
    assert not Question.objects.exists()


@pytest.mark.django_db
def test_a_question_heading_in_another_section_is_an_error(tmp_path):
    text = question_file("why-queues", "Why queues?", "basics", "Because.", extra="heading: fan-out\n")
    assert "section 'basics' has no heading 'fan-out'" in problem(tmp_path, questions={"why-queues.md": text})


@pytest.mark.django_db
def test_every_shipped_question_names_a_heading_of_its_own_section():
    load()
    missing = []
    for question in Question.objects.select_related("section"):
        anchors = {entry["id"] for entry in question.section.toc}
        if question.heading not in anchors:
            missing.append(f"{question.slug}: {question.heading!r} not in {question.section.slug}")
    assert missing == []
    assert Question.objects.count() == len(list((DEFAULT_CONTENT_DIR / "queueing").glob("questions/*.md")))
