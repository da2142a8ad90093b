"""Template tags for the staff admin."""

from django import template

from marketplace.admin.dashboard import Dashboard, build_dashboard

register = template.Library()


@register.simple_tag(takes_context=True)
def staff_dashboard(context) -> Dashboard:
    return build_dashboard(context["request"])
