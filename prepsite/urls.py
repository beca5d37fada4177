from django.contrib import admin
from django.urls import include, path

from prepsite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("topics.urls")),
    path("", include("topics.drills.urls")),
    path("sandbox/", include("sandbox.urls")),
]
