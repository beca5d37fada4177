"""Mock interviews: the prompt, its curveballs, and the model answer split by phase for review."""

import html
import re
from dataclasses import dataclass

from django.utils import timezone

from prepsite.links import lab_link
from prepsite.visitor import Visitor
from topics.drills import canvas, scheduling
from topics.drills.grading import assess
from topics.drills.models import PHASES, Card, MockInterview
from topics.models import Question

SURPRISE_FALLBACK_NOTE = (
    "No full design prompts are loaded yet, so “Surprise me” picked a staff-level question instead. "
    "Use the five phases anyway: it is the shape the interview will take."
)


def mock_prompt_surprise() -> tuple[Question | None, str]:
    """A random full design prompt; else a staff-level question and a note saying so; never a junior one-liner."""
    design = Question.objects.filter(kind=Question.Kind.DESIGN).order_by("?").first()
    if design is not None:
        return design, ""
    staff = Question.objects.filter(level=Question.Level.STAFF).order_by("?").first()
    return staff, SURPRISE_FALLBACK_NOTE if staff is not None else ""


def mock_curveballs(question: Question) -> list[dict]:
    """The interviewer's curveballs: the prompt's own follow-ups first, then the topic's, with Lab links."""
    balls = [{"text": text} for text in question.followups if isinstance(text, str) and text.strip()]
    for ball in question.topic.curveballs:
        extra = {"url": lab_link(ball["preset"])} if ball.get("preset") else {}
        if ball.get("also"):
            extra["also_url"] = lab_link(ball["also"])
        balls.append({**ball, **extra})
    return balls


@dataclass
class CurveballState:
    """The mock's curveballs as the learner meets them: arrived (with when), still to come, the one to pop up."""

    arrived: list[dict]  # shown in the list; each with "arrived" and "acknowledged" ({s, at, clock} or None)
    pending: list[dict]  # still to come: only their times are on the page, never their text
    popup: dict | None  # the oldest arrived curveball not yet acknowledged: it interrupts until it is

    @property
    def next_at_s(self) -> int | None:
        return self.pending[0]["at_s"] if self.pending else None


def _moment(entry: dict, prefix: str) -> dict | None:
    if f"{prefix}_s" not in entry:
        return None
    seconds = entry[f"{prefix}_s"]
    return {"s": seconds, "clock": scheduling.clock(seconds * 1000), "at": entry.get(f"{prefix}_at", "")}


def mock_curveball_state(*, mock: MockInterview, now=None) -> CurveballState:
    balls = mock_interruptions(mock.question)
    schedule = mock.curveball_schedule_s(len(balls))
    elapsed = mock.elapsed_s(now)
    log = mock.curveball_log or {}
    arrived, pending = [], []
    for n, (ball, at_s) in enumerate(zip(balls, schedule, strict=True)):
        key = ball["key"]
        entry = log.get(key, {})
        item = {
            **ball,
            "number": n + 1,
            "at_s": at_s,
            "at": scheduling.clock(at_s * 1000),
            "answer": (mock.notes or {}).get(key, ""),
            "arrived": _moment(entry, "arrived"),
            "acknowledged": _moment(entry, "acknowledged"),
        }
        if mock.finished_at is not None or entry or elapsed >= at_s:
            arrived.append(item)
        else:
            pending.append(item)
    popup = None
    if mock.finished_at is None:
        popup = next((item for item in arrived if item["arrived"] and not item["acknowledged"]), None)
    return CurveballState(arrived=arrived, pending=pending, popup=popup)


def mock_curveballs_arrive(*, mock: MockInterview, now=None) -> list[str]:
    """Record the curveballs whose time has come as arrived now; returns the texts of those that just did."""
    balls = mock_interruptions(mock.question)
    keys = [ball["key"] for ball in balls]
    arrived = mock.curveballs_arrive(keys, now)
    return [balls[keys.index(key)]["text"] for key in arrived]


def mock_sketch_edit(*, mock: MockInterview, phase: str, **edit) -> dict:
    """Apply one edit to a phase's sketch and save it at once (the sketch autosaves, as the notes do).
    Raises canvas.SketchError for an edit the sketch refuses."""
    sketch = canvas.sketch_apply((mock.sketches or {}).get(phase), **edit)
    mock.save_sketch(phase, sketch)
    return sketch


# An interviewer interrupts a few times, not with the whole bank: the prompt's own first push, then the topic's
# curveballs that show its Lab preset, then the others in order (the rest wait for another mock).
INTERRUPTIONS = 3


def mock_interruptions(question: Question) -> list[dict]:
    """The curveballs that will interrupt a mock of `question`, each with its stable key ("curveball-N", N its
    place in mock_curveballs, which the notes of its answer are saved under)."""
    balls = [{**ball, "key": f"curveball-{n}"} for n, ball in enumerate(mock_curveballs(question))]
    own = [ball for ball in balls if "preset" not in ball and "label" not in ball]
    topic = [ball for ball in balls if ball not in own]
    related = [ball for ball in topic if question.preset and question.preset in (ball.get("preset"), ball.get("also"))]
    ordered = own[:1] + related + [ball for ball in topic if ball not in related] + own[1:]
    return ordered[:INTERRUPTIONS]


_H2 = re.compile(r"<h2\b[^>]*>(.*?)</h2\s*>", re.IGNORECASE | re.DOTALL)
_MD_H2 = re.compile(r"^ {0,3}##[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _heading_words(text: str) -> str:
    """'2. Failure modes &amp; <em>wrap-up</em>' -> 'failure modes wrap up'."""
    text = html.unescape(re.sub(r"<[^>]+>", "", text)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split()).lstrip("0123456789 ")


def _is_phase_heading(heading: str, phase: dict) -> bool:
    words, title = _heading_words(heading), _heading_words(phase["title"])
    return words.startswith(title) or words.split()[:1] == title.split()[:1]


def _phases_match(headings: list[str]) -> bool:
    return len(headings) == len(PHASES) and all(map(_is_phase_heading, headings, PHASES))


def answer_html_phases(answer_html: str) -> tuple[str, list[str]] | None:
    """Split a phased model answer at its five <h2>s: (what comes before them, one HTML part per phase).

    None when the headings are not exactly the mock interview's phases in order (a concept question's
    answer), so the caller shows the whole answer once instead of a wrong split."""
    matches = list(_H2.finditer(answer_html))
    if not _phases_match([m.group(1) for m in matches]):
        return None
    ends = [m.start() for m in matches[1:]] + [len(answer_html)]
    parts = [answer_html[m.end() : end].strip() for m, end in zip(matches, ends, strict=True)]
    return answer_html[: matches[0].start()].strip(), parts


def answer_md_phases(answer_md: str) -> tuple[str, list[str]] | None:
    """The same split on the Markdown source (for the export); `##` inside code fences is not a heading."""
    lines = answer_md.splitlines()
    starts, headings, fence = [], [], ""
    for number, line in enumerate(lines):
        opened = _MD_FENCE.match(line)
        if fence:
            fence = "" if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) else fence
        elif opened:
            fence = opened.group(1)
        elif heading := _MD_H2.match(line):
            starts.append(number)
            headings.append(heading.group(1))
    if not _phases_match(headings):
        return None
    ends = [*starts[1:], len(lines)]
    parts = ["\n".join(lines[start + 1 : end]).strip() for start, end in zip(starts, ends, strict=True)]
    return "\n".join(lines[: starts[0]]).strip(), parts


@dataclass
class MockReview:
    """A mock interview beside the model answer: per phase the learner's notes and the model's part."""

    phases: list[dict]  # the mock's phases, each with "model_html" and "model_md" ("" when not phased)
    phased: bool  # False: the model answer has no phase headings and is shown once, whole
    intro_html: str
    intro_md: str


def mock_review(*, mock: MockInterview) -> MockReview:
    question = mock.question
    split_html = answer_html_phases(question.answer_html)
    split_md = answer_md_phases(question.answer_md)
    phases = mock.phases()
    if split_html is None:
        return MockReview(
            phases=[{**phase, "model_html": "", "model_md": ""} for phase in phases],
            phased=False,
            intro_html=question.answer_html,
            intro_md=question.answer_md.strip(),
        )
    intro_html, html_parts = split_html
    intro_md, md_parts = split_md if split_md is not None else (question.answer_md.strip(), [""] * len(phases))
    return MockReview(
        phases=[
            {**phase, "model_html": part_html, "model_md": part_md}
            for phase, part_html, part_md in zip(phases, html_parts, md_parts, strict=True)
        ],
        phased=True,
        intro_html=intro_html,
        intro_md=intro_md,
    )


def mock_finish(*, mock: MockInterview, covered: list[int]) -> bool:
    """Finish (or correct) a mock's self-assessment. The first finish ticks what the notes cover, by the drills'
    matcher, besides what was sent; a prompt with missed points becomes a due drill card if it is not one yet.
    Returns whether a card was added."""
    first = mock.finished_at is None
    if first:
        notes = "\n\n".join(text for text in (mock.notes or {}).values() if text)
        question = mock.question
        covered = [*covered, *assess(notes, question.key_points, shown=[question.prompt, question.answer_md]).credited]
    mock.finish(covered)
    missed = len(mock.question.key_points) - len(mock.self_assessment)
    if not first or missed <= 0:
        return False
    owner = Visitor(user_id=mock.user_id, anon_id=mock.anon_id)
    if Card.objects.owned_by(owner).filter(question=mock.question).exists():
        return False
    now = timezone.now()
    card = Card(**owner.owner(), question=mock.question, created_at=now)
    card.set_fsrs(scheduling.new_card(now))
    card.save()
    return True
