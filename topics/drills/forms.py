import zoneinfo

from django import forms

from topics.drills import canvas
from topics.drills.models import ANSWER_MAX, FORMATS, MOCK_MINUTES, NOTES_MAX, PHASE_KEYS
from topics.models import Question

MAX_DAYS_OUT = 365

IMPORT_MAX_BYTES = 5 * 1024 * 1024


class AttemptForm(forms.Form):
    answer = forms.CharField(
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 12, "maxlength": ANSWER_MAX, "spellcheck": "true"}),
        label="Your answer",
        help_text="Answer as you would out loud in an interview. Up to 20,000 characters.",
    )
    # Epoch milliseconds when the page was rendered, so the server can time the attempt without JS.
    started_at = forms.CharField(required=False, widget=forms.HiddenInput)
    # Which button was pressed; a client that sends neither (Enter in some browsers) means "submit".
    action = forms.ChoiceField(
        required=False, choices=[("submit", "Submit answer"), ("give_up", "I don't know — show me")]
    )

    def clean_answer(self) -> str:
        answer = self.cleaned_data["answer"]
        if len(answer) > ANSWER_MAX:
            raise forms.ValidationError(
                f"Your answer is {len(answer):,} characters; the limit is {ANSWER_MAX:,}. "
                "Shorten it (an interview answer rarely needs more than a page) and submit again."
            )
        return answer

    def clean_started_at(self) -> int | None:
        # A tampered or missing timer only costs the duration, never the attempt.
        value = self.cleaned_data["started_at"]
        # isascii(): "²" and other Unicode digits pass isdigit() but not int().
        return int(value) if value.isascii() and value.isdigit() and len(value) <= 16 else None

    def clean_action(self) -> str:
        return self.cleaned_data["action"] or "submit"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("action") == "submit" and "answer" in data and not data["answer"]:
            self.add_error(
                "answer", "Write an answer first — or press “I don't know — show me” to see the model answer."
            )
        return data

    @property
    def gave_up(self) -> bool:
        return self.cleaned_data.get("action") == "give_up"


class RatingForm(forms.Form):
    rating = forms.TypedChoiceField(
        coerce=int,
        choices=[(1, "Again"), (2, "Hard"), (3, "Good"), (4, "Easy")],
        error_messages={"invalid_choice": "Rating must be 1 (Again), 2 (Hard), 3 (Good) or 4 (Easy)."},
    )
    ticked = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=[])

    def __init__(self, *args, points: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ticked"].choices = [(i, i) for i in range(points)]
        self.fields["ticked"].error_messages["invalid_choice"] = "That key point does not exist."


class MockStartForm(forms.Form):
    question = forms.ModelChoiceField(queryset=None, required=False, label="Interview prompt")
    minutes = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=MOCK_MINUTES,
        choices=[(m, f"{m} minutes") for m in sorted(FORMATS, reverse=True)],
        initial=MOCK_MINUTES,
        label="Length",
        widget=forms.RadioSelect,
        help_text="45 minutes is the usual system-design round; 35 and 20 keep the five phases, shorter.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["question"]
        field.queryset = Question.objects.select_related("topic").in_order()
        # Full design prompts first: they are what a mock interview is for; concept questions by level after.
        questions = list(field.queryset.defer("answer_md", "answer_html", "key_points", "followups"))
        design = [(q.pk, q.prompt) for q in questions if q.kind == Question.Kind.DESIGN]
        levels = {level: rank for rank, level in enumerate(["staff", "senior", "junior"])}
        concept = sorted((q for q in questions if q.kind != Question.Kind.DESIGN), key=lambda q: levels.get(q.level, 3))
        surprise = (
            "Surprise me: a random full design prompt" if design else "Surprise me: a random staff-level question"
        )
        field.choices = [
            ("", surprise),
            *([(f"Design prompts (a full {MOCK_MINUTES}-minute interview)", design)] if design else []),
            ("Concept questions", [(q.pk, f"[{q.get_level_display()}] {q.prompt}") for q in concept]),
        ]


MAX_CURVEBALLS = 12


class MockNotesForm(forms.Form):
    # A phase's notes, or the answer to the interviewer's curveball number N ("curveball-N").
    phase = forms.ChoiceField(
        choices=[(key, key) for key in [*PHASE_KEYS, *(f"curveball-{n}" for n in range(MAX_CURVEBALLS))]]
    )
    notes = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 6, "maxlength": NOTES_MAX})
    )

    def clean_notes(self) -> str:
        notes = self.cleaned_data["notes"]
        if len(notes) > NOTES_MAX:
            raise forms.ValidationError(
                f"Notes are limited to {NOTES_MAX:,} characters per phase (these are {len(notes):,})."
            )
        return notes


class MockFinishForm(forms.Form):
    covered = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=[])

    def __init__(self, *args, points: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["covered"].choices = [(i, i) for i in range(points)]


class ImportForm(forms.Form):
    file = forms.FileField(label="Export file (.json)")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError("That file is larger than 5 MB; a drills export is far smaller.")
        return upload


class PlanForm(forms.Form):
    interview_date = forms.DateField(
        label="Interview date", widget=forms.DateInput(attrs={"type": "date"}), help_text="The day of the interview."
    )
    level = forms.ChoiceField(
        label="Target level", choices=Question.Level.choices, initial=Question.Level.SENIOR, widget=forms.RadioSelect
    )
    hide_junior = forms.BooleanField(label="Leave out junior questions", required=False)
    # The browser's time zone (filled in by drills.js), so "today" and times are the learner's own.
    time_zone = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args, today=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def clean_interview_date(self):
        value = self.cleaned_data["interview_date"]
        if self.today is not None and value <= self.today:
            raise forms.ValidationError("Pick a day after today: the plan needs at least one day to work with.")
        if self.today is not None and (value - self.today).days > MAX_DAYS_OUT:
            raise forms.ValidationError(f"Pick a day within {MAX_DAYS_OUT} days from today.")
        return value

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"] or "UTC"
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return "UTC"  # an unknown zone costs local dates, never the plan
        return name


class DrillFilterForm(forms.Form):
    """The all-questions page's filters; an unknown value is a 400, not an empty list."""

    level = forms.ChoiceField(required=False, choices=[("", "All levels"), *Question.Level.choices])
    chapter = forms.ChoiceField(required=False, label="Chapter")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), ("new", "New"), ("due", "Due now"), ("later", "Scheduled")]
    )

    def __init__(self, *args, chapters: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["chapter"].choices = [("", "All chapters"), *chapters]


class MockClockForm(forms.Form):
    action = forms.ChoiceField(choices=[("pause", "Pause"), ("resume", "Resume"), ("next", "Next phase")])


class MockCurveballForm(forms.Form):
    """Acknowledging an interruption: which curveball, and whether to answer it now or carry on first."""

    key = forms.RegexField(regex=r"^curveball-\d{1,2}$", error_messages={"invalid": "Unknown curveball."})
    then = forms.ChoiceField(required=False, choices=[("answer", "Answer it now"), ("later", "Later")])


class MockSketchForm(forms.Form):
    """One edit of a phase's sketch; the sketch itself (topics.drills.canvas) checks what the edit means."""

    phase = forms.ChoiceField(choices=[(key, key) for key in PHASE_KEYS])
    action = forms.ChoiceField(choices=[(action, action) for action in canvas.ACTIONS])
    label = forms.CharField(required=False, max_length=canvas.LABEL_MAX, label="Box name")
    box = forms.IntegerField(required=False, min_value=1, max_value=10_000)
    source = forms.IntegerField(required=False, min_value=1, max_value=10_000, label="From")
    target = forms.IntegerField(required=False, min_value=1, max_value=10_000, label="To")
    x = forms.IntegerField(required=False, min_value=-10_000, max_value=10_000)  # the sketch clamps it
    y = forms.IntegerField(required=False, min_value=-10_000, max_value=10_000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].error_messages["max_length"] = (
            f"A box's name is at most {canvas.LABEL_MAX} characters (this one has %(show_value)d)."
        )

    def errors_text(self) -> str:
        return " ".join(str(error) for errors in self.errors.values() for error in errors)
