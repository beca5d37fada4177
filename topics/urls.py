from django.urls import path, register_converter

from topics import views
from topics.models import RESERVED_SECTION_SLUGS


class ChapterSlugConverter:
    """A section slug, but never a segment another route under /topics/<topic>/ owns (e.g. the Drills
    app's `drill/`, included after us): the loader rejects sections with those slugs."""

    regex = r"(?!(?:{})/)[-a-zA-Z0-9_]+".format("|".join(sorted(RESERVED_SECTION_SLUGS)))

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ChapterSlugConverter, "chapter")

app_name = "topics"
urlpatterns = [
    path("topics/", views.topic_list, name="topic_list"),
    path("topics/<slug:slug>/", views.topic_detail, name="topic_detail"),
    path("topics/<slug:slug>/personal/", views.topic_personal, name="topic_personal"),
    path("topics/<slug:slug>/checklist/", views.checklist, name="checklist"),
    path(
        "topics/<slug:slug>/sections/<slug:section_slug>/understood/",
        views.mark_understood,
        name="mark_understood",
    ),
    path(
        "topics/<slug:slug>/sections/<slug:section_slug>/headings/understood/",
        views.mark_heading,
        name="mark_heading",
    ),
    path(
        "topics/<slug:slug>/sections/<slug:section_slug>/position/",
        views.save_position,
        name="save_position",
    ),
    # Chapters last: the fixed segments above must win over a section slug.
    path("topics/<slug:slug>/<chapter:section_slug>/", views.section_detail, name="section"),
    path("topics/<slug:slug>/<chapter:section_slug>/personal/", views.section_personal, name="section_personal"),
    path("search/", views.search, name="search"),
]
