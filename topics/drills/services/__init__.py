"""Drill operations that span several models, one module per job: attempts, the day's plan, progress,
moving a learner's history (merge, export, import) and mock interviews. Callers import them from here."""

from topics.drills.services.attempts import (
    MAX_DURATION_MS,
    AlreadyRated,
    attempt_rate,
    attempt_rating_choices,
    attempt_submit,
    new_per_day,
    start_of_today,
)
from topics.drills.services.mock import (
    SURPRISE_FALLBACK_NOTE,
    MockReview,
    answer_html_phases,
    answer_md_phases,
    mock_curveballs,
    mock_prompt_surprise,
    mock_review,
)
from topics.drills.services.plan import HEAVY_FIELDS, DrillPlan, drill_plan, due_count
from topics.drills.services.portability import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    IMPORT_BATCH,
    MAX_IMPORT_CARDS,
    MAX_IMPORT_REVIEWS,
    ImportRejected,
    export_data,
    export_loads,
    import_cards,
    import_data,
    learner_merge,
    parse_export,
)
from topics.drills.services.progress import (
    READINESS_RULE,
    READINESS_SETTLE,
    ConceptProgress,
    Progress,
    progress_for,
    streak,
)

__all__ = [
    "EXPORT_FORMAT", "EXPORT_VERSION", "HEAVY_FIELDS", "IMPORT_BATCH", "MAX_DURATION_MS", "MAX_IMPORT_CARDS",
    "MAX_IMPORT_REVIEWS", "READINESS_RULE", "READINESS_SETTLE", "SURPRISE_FALLBACK_NOTE", "AlreadyRated",
    "ConceptProgress", "DrillPlan", "ImportRejected", "MockReview", "Progress", "answer_html_phases",
    "answer_md_phases", "attempt_rate", "attempt_rating_choices", "attempt_submit", "drill_plan", "due_count",
    "export_data", "export_loads", "import_cards", "import_data", "learner_merge", "mock_curveballs",
    "mock_prompt_surprise", "mock_review", "new_per_day", "parse_export", "progress_for", "start_of_today", "streak",
]  # fmt: skip
