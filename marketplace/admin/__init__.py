"""Django admin, one module per area; importing them registers the models."""

from django.conf import settings
from django.contrib import admin
from django.utils.translation import gettext_lazy

from marketplace.admin import (
    accounts,  # noqa: F401
    catalog,  # noqa: F401
    orders,  # noqa: F401
    payouts,  # noqa: F401
    privacy,  # noqa: F401
    social,  # noqa: F401
    staff,  # noqa: F401
    wallet,  # noqa: F401
)
from marketplace.admin.landing import install as install_landing

install_landing(admin.site)

if settings.IS_STAGING:
    # Staging looks like production and fakes payments: say so on every admin page.
    admin.site.site_header = gettext_lazy("STAGING · Administration")
    admin.site.site_title = gettext_lazy("STAGING")
