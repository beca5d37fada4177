"""Precision and recall of rubric matching (topics/drills/matching.py) on hand-labelled answers.

Reads the real question files with the content loader's own parser (no database: the rubric is all the
matcher sees), runs the matcher over every answer in tests/drills/labelled_answers.yaml and compares the
key points it ticks with the labels.
A key-point tick is a true positive when the label has it, a false positive when it does not; a
labelled point the matcher misses is a false negative. Three splits: every third of the first
answers is held out from tuning, and answers marked `blind` were written after tuning and never tuned
against; the worst false positives / negatives listed come from the tuning part only.

Usage: .venv/bin/python bench/rubric.py [--all]   (--all also lists held-out mistakes)
Prints per-question and per-split figures, then `precision <p> recall <r>` (all answers) last.
"""

import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
LABELLED = BASE_DIR / "tests" / "drills" / "labelled_answers.yaml"
WORST = 12


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: "Tally") -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def __str__(self) -> str:
        return f"precision {self.precision:.2f} recall {self.recall:.2f} (tp={self.tp} fp={self.fp} fn={self.fn})"


@dataclass
class Mistake:
    question: str
    label: str
    words: list[str] = field(default_factory=list)
    answer: str = ""


def split_of(position: int, case: dict) -> str:
    if case.get("blind"):
        return "blind"
    return "held-out" if position % 3 == 2 else "tuning"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prepsite.settings")
    import django

    django.setup()


def question_key_points(slugs: set[str]) -> dict[str, list[dict]]:
    """Key points by slug, read from topics/content/*/questions/*.md as the loader reads them."""
    from topics import loader

    problems = loader._Problems(BASE_DIR)
    found = {}
    for path in sorted((BASE_DIR / "topics" / "content").glob("*/questions/*.md")):
        source = loader.parse_file(path, problems)
        if source is not None and source.meta.get("slug") in slugs:
            found[source.meta["slug"]] = source.meta["key_points"]
    if problems.items:
        sys.exit("error: " + "\n".join(problems.items))
    return found


def main() -> None:
    show_all = "--all" in sys.argv[1:]
    setup_django()
    from topics.drills.matching import match_key_points

    cases = yaml.safe_load(LABELLED.read_text())["answers"]
    key_points = question_key_points({c["question"] for c in cases})
    missing = {c["question"] for c in cases} - key_points.keys()
    if missing:
        sys.exit(f"error: labelled answers for unknown questions: {', '.join(sorted(missing))}")

    per_question: dict[str, Tally] = defaultdict(Tally)
    splits = {"tuning": Tally(), "held-out": Tally(), "blind": Tally()}
    false_positives: Counter[tuple[str, str]] = Counter()
    false_negatives: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str, str], Mistake] = {}
    for position, case in enumerate(cases):
        points = key_points[case["question"]]
        result = match_key_points(case["answer"], points)
        ticked, truth = set(result.matched_indexes), set(case["covers"])
        tally = Tally(tp=len(ticked & truth), fp=len(ticked - truth), fn=len(truth - ticked))
        per_question[case["question"]].add(tally)
        split = split_of(position, case)
        splits[split].add(tally)
        if split != "tuning" and not show_all:
            continue
        for kind, indexes, counter in (
            ("fp", ticked - truth, false_positives),
            ("fn", truth - ticked, false_negatives),
        ):
            for index in indexes:
                key = (case["question"], points[index]["label"])
                counter[key] += 1
                examples.setdefault((kind, *key), Mistake(*key, result.points[index].matched_words, case["answer"]))

    print(f"{len(cases)} labelled answers over {len(key_points)} questions")
    for slug, tally in sorted(per_question.items()):
        print(f"  {slug:36} {tally}")
    scope = "all answers" if show_all else "tuning answers only"
    for kind, counter in (("fp", false_positives), ("fn", false_negatives)):
        title = "false positives (ticked, not covered)" if kind == "fp" else "false negatives (covered, not ticked)"
        print(f"worst {title}, {scope}:")
        for (slug, label), count in counter.most_common(WORST):
            mistake = examples[(kind, slug, label)]
            cue = f" on {', '.join(repr(w) for w in mistake.words)}" if kind == "fp" else ""
            excerpt = " ".join(mistake.answer.split())[:90]
            print(f"  {count}x {slug}: {label}{cue} — “{excerpt}…”")
    total = Tally()
    for name, tally in splits.items():
        print(f"{name:9} {tally}")
        total.add(tally)
    print(f"precision {total.precision:.2f} recall {total.recall:.2f}")


if __name__ == "__main__":
    main()
