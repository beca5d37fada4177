import re

from django import template

register = template.Library()

_HEADING = re.compile(r"<(/?)h([1-6])\b", re.IGNORECASE)


@register.filter(is_safe=True)
def headings_from(html: str, level: int) -> str:
    """Shift rendered Markdown's headings so its top one is <h{level}>: a model answer's `##` phases
    sit under the page's <h3>, and a screen reader's outline must not jump from h3 back up to h2.
    Apply after `|safe`: the result stays safe only if the input was."""
    levels = [int(m.group(2)) for m in _HEADING.finditer(html)]
    if not levels:
        return html
    shift = int(level) - min(levels)
    return _HEADING.sub(lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + shift)}", html)
