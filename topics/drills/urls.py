from django.urls import path

from topics.drills import mock_views, path_views, views

app_name = "drills"
urlpatterns = [
    path("drills/", views.home, name="home"),
    path("drills/plan/", path_views.plan, name="plan"),
    path("drills/progress/", views.progress, name="progress"),
    path("drills/export/", views.export, name="export"),
    path("drills/import/", views.import_view, name="import"),
    path("drills/mock/", mock_views.mock_start, name="mock_start"),
    path("drills/mock/<int:pk>/", mock_views.mock_detail, name="mock_detail"),
    path("drills/mock/<int:pk>/save/", mock_views.mock_save, name="mock_save"),
    path("drills/mock/<int:pk>/curveball/", mock_views.mock_curveball, name="mock_curveball"),
    path("drills/mock/<int:pk>/sketch/", mock_views.mock_sketch, name="mock_sketch"),
    path("drills/mock/<int:pk>/clock/", mock_views.mock_clock, name="mock_clock"),
    path("drills/mock/<int:pk>/finish/", mock_views.mock_finish, name="mock_finish"),
    path("drills/mock/<int:pk>/export/", mock_views.mock_export, name="mock_export"),
    path("topics/<slug:topic>/drill/", views.topic_drill, name="topic_drill"),
    path("topics/<slug:topic>/drill-status/", views.topic_drill_personal, name="topic_drill_personal"),
    path("topics/<slug:topic>/drill/<slug:slug>/", views.question, name="question"),
    path("topics/<slug:topic>/drill/<slug:slug>/attempt/<uuid:token>/", views.attempt, name="attempt"),
    path("topics/<slug:topic>/drill/<slug:slug>/attempt/<uuid:token>/rate/", views.rate, name="rate"),
]
