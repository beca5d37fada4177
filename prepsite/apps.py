from django.apps import AppConfig


class PrepsiteConfig(AppConfig):
    name = "prepsite"
    verbose_name = "Queue Prep (project)"

    def ready(self) -> None:
        from prepsite import checks  # noqa: F401  (registers the deploy checks)
