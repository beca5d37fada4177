import io
from pathlib import Path

import pytest
from django.core.management import call_command

from topics.models import Topic

KEY_POINTS = """key_points:
  - label: "One"
    phrases: ["alpha"]
  - label: "Two"
    phrases: ["beta"]
  - label: "Three"
    phrases: ["gamma"]
  - label: "Four"
    phrases: ["delta"]
"""


def section_file(slug: str, title: str, order: int, body: str) -> str:
    return f"---\ntitle: {title}\nslug: {slug}\norder: {order}\n---\n{body}\n"


def question_file(slug: str, prompt: str, section: str, body: str, *, preset: str = "", extra: str = "") -> str:
    preset_line = f"preset: {preset}\n" if preset else ""
    return (
        f'---\nslug: {slug}\nprompt: "{prompt}"\nlevel: senior\nsection: {section}\n{preset_line}{KEY_POINTS}'
        f'followups:\n  - "And then?"\n{extra}---\n{body}\n'
    )


def write_content(root: Path, *, sections: dict[str, str] | None = None, questions: dict[str, str] | None = None):
    """A small valid content tree (topic `demo`) under root; override files by name."""
    topic = root / "demo"
    (topic / "sections").mkdir(parents=True, exist_ok=True)
    (topic / "questions").mkdir(parents=True, exist_ok=True)
    (topic / "topic.md").write_text("---\ntitle: Demo topic\nsummary: A tiny topic.\norder: 1\n---\nIntro text.\n")
    default_sections = {
        "01-basics.md": section_file(
            "basics",
            "Basics",
            1,
            "The zanzibar protocol hides in this body.\n\n### Retry budgets\n\nA budget caps retries at 10%.\n\n"
            "See [the lab](lab:poison) and [later](section:advanced#fan-out) and [a drill](question:why-queues).\n",
        ),
        "02-advanced.md": section_file(
            "advanced",
            "Advanced",
            2,
            "### Fan out\n\nCopies per subscriber.\n\n```python\ndef handler(job):\n    return 42\n```\n\n"
            "| a | b |\n| --- | --- |\n| 1 | 2 |\n",
        ),
    }
    default_questions = {
        "why-queues.md": question_file(
            "why-queues", "Why put work behind a queue?", "basics", "Because bursts.", preset="spike"
        ),
    }
    for name, text in {**default_sections, **(sections or {})}.items():
        path = topic / "sections" / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    for name, text in {**default_questions, **(questions or {})}.items():
        path = topic / "questions" / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    return root


def load(path: Path | None = None) -> str:
    out = io.StringIO()
    args = ["--path", str(path)] if path else []
    call_command("load_content", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def demo(db, tmp_path) -> Topic:
    load(write_content(tmp_path / "content"))
    return Topic.objects.get(slug="demo")
