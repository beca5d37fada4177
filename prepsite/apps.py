from django.apps import AppConfig


class PrepsiteConfig(AppConfig):
    name = "prepsite"
    verbose_name = "Queue Prep (project)"

    def ready(self) -> None:
        from prepsite import accounts, checks  # noqa: F401  (the deploy checks; the log-in failure counter)
