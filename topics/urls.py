from django.urls import path

from topics import views

app_name = "topics"
urlpatterns = [
    path("topics/", views.topic_list, name="topic_list"),
]
