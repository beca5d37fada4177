from django.urls import path

from sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("", views.lab_home, name="home"),
]
