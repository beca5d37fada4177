from django.contrib import admin

from topics.models import Question, Section, SectionUnderstood, Topic

# Content is edited as Markdown files and loaded by `manage.py load_content`; the admin is for looking.


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "order"]
    search_fields = ["title", "slug"]


@admin.register(Section)
class SectionAdmin(admin.ModelAdmin):
    list_display = ["title", "topic", "slug", "order"]
    list_filter = ["topic"]
    search_fields = ["title", "slug", "body_md"]


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["slug", "topic", "level", "section", "preset", "order"]
    list_filter = ["topic", "level", "preset"]
    search_fields = ["slug", "prompt", "answer_md"]


@admin.register(SectionUnderstood)
class SectionUnderstoodAdmin(admin.ModelAdmin):
    list_display = ["section", "user", "anon_id", "created"]
    list_filter = ["section__topic"]
    raw_id_fields = ["user"]
