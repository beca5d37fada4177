"""Precision and recall of rubric matching (topics/drills/matching.py) on hand-labelled answers.

Reads the real question files with the content loader's own parser (no database: the rubric is all the
matcher sees), runs the matcher over every answer in tests/drills/labelled_answers.yaml and compares the
key points it ticks with the labels.
A key-point tick is a true positive when the label has it, a false positive when it does not; a
labelled point the matcher misses is a false negative. Three splits: every third of the first
answers is held out from tuning, and answers marked `blind` were written after tuning and never tuned
against; the worst false positives / negatives listed come from the tuning part only.

The gaming set is built from every question file: what a learner could paste to tick points without
knowing the answer (the "listens for" phrases as one line, the key-point labels, a buzzword list, runs
copied from the model answer). Its credit rate is the share of key points those answers are credited
(topics/drills/grading.py decides credit, as the site does); the target is 10% or less.

Usage: .venv/bin/python bench/rubric.py [--all]   (--all also lists held-out mistakes)
Prints per-question and per-split figures, the gaming set's credit rate, then
`precision <p> recall <r> gaming credit <g>` (all labelled answers; the gaming set) last.
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


@dataclass
class QuestionFile:
    key_points: list[dict]
    shown: list[str]  # what the drill page shows: the prompt, and after an attempt the model answer


def question_files() -> dict[str, QuestionFile]:
    """Every question by slug, read from topics/content/*/questions/*.md as the loader reads them."""
    from topics import loader

    problems = loader._Problems(BASE_DIR)
    found = {}
    for path in sorted((BASE_DIR / "topics" / "content").glob("*/questions/*.md")):
        source = loader.parse_file(path, problems)
        if source is not None and source.meta.get("slug"):
            found[source.meta["slug"]] = QuestionFile(
                source.meta["key_points"], [str(source.meta.get("prompt", "")), source.body]
            )
    if problems.items:
        sys.exit("error: " + "\n".join(problems.items))
    return found


BUZZWORDS = (
    "exponential backoff formula, jitter, idempotency key, dead letter queue, redrive, at least once, exactly once, "
    "visibility timeout, consumer group, partition, offset commit, outbox, backpressure, load shedding, "
    "Little's law, retry budget, circuit breaker, fencing token, lease, heartbeat, rebalance, ordering key, "
    "DLQ alarm, canary, rate limit, token bucket, autoscaling on queue age, SLO, p99 latency, lag, "
    "poison message, schema registry, compaction"
)


def gaming_answers(question: QuestionFile) -> dict[str, str]:
    """Answers that know the page, not the subject: each must earn (almost) nothing."""
    phrases = [phrase for point in question.key_points for phrase in point["phrases"]]
    model = question.shown[1].split()
    middle = len(model) // 2
    return {
        "pasted phrases, one line": ", ".join(phrases),
        "pasted phrases, one per line": "\n".join(f"- {point['phrases'][0]}" for point in question.key_points),
        "first phrase of each point, and-joined": " and ".join(point["phrases"][0] for point in question.key_points),
        "three phrases of different points": ", ".join(point["phrases"][0] for point in question.key_points[:3]),
        "key-point labels": ", ".join(point["label"] for point in question.key_points),
        "buzzword list": BUZZWORDS,
        "model answer, first 80 words": " ".join(model[:80]),
        "model answer, three 20-word runs": " ... ".join(
            " ".join(model[start : start + 20]) for start in (len(model) // 5, middle, len(model) * 4 // 5)
        ),
    }


def gaming_credit(questions: dict[str, QuestionFile]) -> tuple[float, dict[str, tuple[int, int]]]:
    """Share of key points the gaming answers are credited, overall and per kind (credited, offered)."""
    from topics.drills.grading import assess

    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for question in questions.values():
        for kind, answer in gaming_answers(question).items():
            result = assess(answer, question.key_points, shown=question.shown, duration_ms=None)
            kinds[kind][0] += len(result.credited)
            kinds[kind][1] += len(question.key_points)
    credited = sum(c for c, _ in kinds.values())
    offered = sum(o for _, o in kinds.values())
    return credited / offered, {kind: (c, o) for kind, (c, o) in kinds.items()}


def main() -> None:
    show_all = "--all" in sys.argv[1:]
    setup_django()
    from topics.drills.grading import assess

    cases = yaml.safe_load(LABELLED.read_text())["answers"]
    questions = question_files()
    key_points = {slug: questions[slug].key_points for slug in {c["question"] for c in cases} if slug in questions}
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
        result = assess(case["answer"], points, shown=questions[case["question"]].shown)
        ticked, truth = set(result.credited), set(case["covers"])
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
                examples.setdefault(
                    (kind, *key), Mistake(*key, result.match.points[index].matched_words, case["answer"])
                )

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
    rate, kinds = gaming_credit(questions)
    print(f"gaming set over {len(questions)} questions (credited / key points offered):")
    for kind, (credited, offered) in kinds.items():
        print(f"  {kind:40} {credited:4} / {offered:4} = {credited / offered:.0%}")
    print(f"precision {total.precision:.2f} recall {total.recall:.2f} gaming credit {rate:.0%}")


if __name__ == "__main__":
    main()
