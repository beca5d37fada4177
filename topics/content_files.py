"""Reading one content file: its YAML front matter and Markdown body, with problems reported at their
`file:line` (topics.loader validates and loads a whole tree with these)."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass
class SourceFile:
    path: Path
    meta: dict
    body: str
    body_line: int  # 1-based line number of the body's first line
    lines: list[str]

    def key_line(self, key: str) -> int:
        """Line of `key:` in the front matter (1 when the key is missing)."""
        pattern = re.compile(rf"^{re.escape(key)}\s*:")
        for number, line in enumerate(self.lines[: self.body_line], start=1):
            if pattern.match(line):
                return number
        return 1

    def line_of(self, *needles: str) -> int:
        """First body line containing the first needle found (inline links, then reference definitions)."""
        for needle in needles:
            for number, line in enumerate(self.lines, start=1):
                if number >= self.body_line and needle in line:
                    return number
        return self.body_line


@dataclass
class _Problems:
    root: Path
    items: list[str] = field(default_factory=list)

    def add(self, path: Path, line: int, message: str) -> None:
        try:
            shown = path.resolve().relative_to(Path(settings.BASE_DIR).resolve())
        except ValueError:
            shown = path
        item = f"{shown}:{line}: {message}"
        if item not in self.items:
            self.items.append(item)


def parse_file(path: Path, problems: _Problems) -> SourceFile | None:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        problems.add(path, 1, "missing YAML front matter (the file must start with a '---' line)")
        return None
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        problems.add(path, 1, "front matter is not closed by a '---' line")
        return None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problems.add(path, line, f"invalid YAML front matter: {getattr(error, 'problem', error)}")
        return None
    if not isinstance(meta, dict):
        problems.add(path, 2, "front matter must be a mapping of keys to values")
        return None
    body = "\n".join(lines[end + 1 :]).strip("\n")
    # Count the blank lines stripped from the start of the body so line numbers stay right.
    first_body = end + 2
    for line in lines[end + 1 :]:
        if line.strip():
            break
        first_body += 1
    return SourceFile(path=path, meta=meta, body=body, body_line=first_body, lines=lines)


def _text(source: SourceFile, key: str, problems: _Problems, *, required: bool = True) -> str:
    value = source.meta.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add(source.path, source.key_line(key), f"missing {key}")
        return ""
    if not isinstance(value, str | int | float):
        problems.add(source.path, source.key_line(key), f"{key} must be text")
        return ""
    return str(value).strip()


def _order(source: SourceFile, default: int, problems: _Problems) -> int:
    value = source.meta.get("order", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(source.path, source.key_line("order"), "order must be a non-negative whole number")
        return default
    return value


def _slug(source: SourceFile, default: str, problems: _Problems) -> str:
    slug = str(source.meta.get("slug") or default).strip()
    if not SLUG.match(slug):
        problems.add(source.path, source.key_line("slug"), f"slug {slug!r} must be lowercase words joined by '-'")
    return slug
