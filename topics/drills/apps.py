from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "topics.drills"
    label = "drills"
    verbose_name = "Drills"
