from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "topics.drills"
    label = "drills"
    verbose_name = "Drills"

    def ready(self) -> None:
        from topics.drills import signals  # noqa: F401  (connects the login merge)
