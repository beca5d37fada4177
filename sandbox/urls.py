from django.urls import path

from sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("", views.lab_home, name="home"),
    path("start/", views.start, name="start"),
    path("start/jitter-pair/", views.start_pair, name="start_pair"),
    path("start/two-models/", views.start_models, name="start_models"),
    path("experiments/", views.history, name="history"),
    path("compare/", views.compare, name="compare"),
    path("experiments/<int:pk>/", views.detail, name="detail"),
    path("experiments/<int:pk>/live/", views.live_panels, name="live"),
    path("experiments/<int:pk>/redrive/", views.redrive, name="redrive"),
    path("experiments/<int:pk>/discard/", views.discard, name="discard"),
    path("experiments/<int:pk>/fix/", views.fix_consumer, name="fix_consumer"),
    path("experiments/<int:pk>/crash/", views.crash, name="crash"),
    path("experiments/<int:pk>/stop-job/", views.stop_job, name="stop_job"),
    path("experiments/<int:pk>/stop/", views.stop, name="stop"),
    path("experiments/<int:pk>/try-next/", views.try_next, name="try_next"),
    path("experiments/<int:pk>/kill-consumer/", views.kill_consumer, name="kill_consumer"),
]
