from topics.drills.matching import match_key_points

POINTS = [
    {"label": "At-least-once", "phrases": ["at-least-once", "redeliver"]},
    {"label": "Idempotency", "phrases": ["idempoten", "dedup"]},
    {"label": "Kafka acks", "phrases": ["acks=all"]},
    {"label": "RPS", "phrases": ["rps"]},
    {"label": "Never mentioned", "phrases": ["circuit breaker"]},
]


def test_matching_ticks_exactly_the_points_whose_phrases_appear():
    result = match_key_points("We get AT LEAST ONCE delivery, so consumers are Idempotent; acks = all.", POINTS)
    assert result.matched_indexes == [0, 1, 2]


def test_matching_ignores_case_and_punctuation_and_reports_words_as_written():
    result = match_key_points("Messages are REDELIVERED? No: they're re-delivered... Redeliver!", POINTS)
    assert result.points[0].matched_phrases == ["redeliver"]
    # "REDELIVERED" counts (a 4+ letter last word is a stem); "re-delivered" is two other words.
    assert result.points[0].matched_words == ["REDELIVERED", "Redeliver"]


def test_matching_respects_word_boundaries():
    result = match_key_points("harps and warps at 500 rpsx; preacks=allx", POINTS)
    assert result.matched_indexes == []


def test_matching_allows_plurals_and_author_stems():
    result = match_key_points("Two dedups; idempotency keys; 300 RPS", POINTS)
    assert result.matched_indexes == [1, 3]
    assert result.points[1].matched_words == ["idempotency", "dedups"]


def test_matching_is_deterministic_and_highlights_segments():
    text = "Use a circuit\nbreaker, and dedup."
    first, second = match_key_points(text, POINTS), match_key_points(text, POINTS)
    assert first.matched_indexes == second.matched_indexes == [1, 4]
    assert first.segments == [
        ("Use a ", False),
        ("circuit\nbreaker", True),
        (", and ", False),
        ("dedup", True),
        (".", False),
    ]
    assert "".join(text for text, _ in first.segments) == text


def test_empty_answer_matches_nothing():
    assert match_key_points("", POINTS).matched_indexes == []
