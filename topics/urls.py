from django.urls import path

from topics import views

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
    path("search/", views.search, name="search"),
]
