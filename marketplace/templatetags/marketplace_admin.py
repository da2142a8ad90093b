"""Template tags for the staff admin."""

from django import template

from marketplace.admin.dashboard import Dashboard, build_dashboard
from marketplace.money import yuan_label

register = template.Library()


@register.simple_tag(takes_context=True)
def staff_dashboard(context) -> Dashboard:
    return build_dashboard(context["request"])


@register.filter
def yuan(fen: int | None) -> str:
    """`{{ amount_fen|yuan }}` → "¥1,234.56": the one money helper, in templates."""
    return yuan_label(fen)
