"""Links between the apps by URL name, so Study and Drills can point at the Lab without importing it."""

from urllib.parse import urlencode

from django.urls import reverse


def lab_link(preset: str) -> str:
    """The Lab's home with `preset` chosen in its start form."""
    return f"{reverse('sandbox:home')}?{urlencode({'preset': preset})}"
