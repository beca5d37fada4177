from django.contrib import admin

from topics.drills.models import Attempt, Card, MockInterview, Review


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0
    fields = ["reviewed_at", "rating", "duration_ms", "ticked"]
    readonly_fields = fields


@admin.register(Card)
class CardAdmin(admin.ModelAdmin):
    list_display = ["question", "user", "anon_id", "state", "reps", "due", "last_review"]
    list_filter = ["state"]
    search_fields = ["question__slug", "user__username", "anon_id"]
    raw_id_fields = ["question", "user"]
    inlines = [ReviewInline]


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ["question", "user", "submitted_at", "gave_up", "rated_at"]
    raw_id_fields = ["question", "user", "review"]


@admin.register(MockInterview)
class MockInterviewAdmin(admin.ModelAdmin):
    list_display = ["question", "user", "started_at", "finished_at"]
    raw_id_fields = ["question", "user"]
