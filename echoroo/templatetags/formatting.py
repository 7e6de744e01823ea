"""Template filters for echoroo.formatting: {% load formatting %} then {{ recording.duration|duration }}."""

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from echoroo import formatting

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """A length of time as people say it ("0.142 s", "30 min", "2 h 05 min")."""
    return formatting.duration_text(seconds)


@register.filter
def path_breaks(path: str) -> str:
    """A path that may wrap after each "/" (a <wbr> there), so that a long one breaks between folders."""
    return mark_safe(escape(path).replace("/", "/<wbr>"))
