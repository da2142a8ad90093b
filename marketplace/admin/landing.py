"""Where a staff member lands after signing in: the queue of their role (reviewers: listings
awaiting review; support: open disputes; finance: withdrawals to pay out). Staff holding several
roles, and superusers, land on the dashboard (the admin index), which shows every queue they
may open. Only the landing changes: every page stays reachable, permissions decide the rest."""

from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from marketplace.models import Withdrawal
from marketplace.states import ListingStatus

ROLE_LANDINGS: dict[str, tuple[str, dict[str, str]]] = {
    "reviewers": (
        "admin:marketplace_listing_changelist",
        {"status__exact": ListingStatus.PENDING_REVIEW},
    ),
    "support": ("admin:marketplace_dispute_changelist", {"open": "yes"}),
    "finance": (
        "admin:marketplace_withdrawal_changelist",
        {"status__exact": Withdrawal.Status.PENDING, "to__exact": Withdrawal.Destination.ACCOUNT},
    ),
}


def landing_url(user) -> str | None:
    """The landing of the user's one role, or None (the dashboard)."""
    if not user.is_authenticated or user.is_superuser:
        return None
    roles = [name for name in user.groups.values_list("name", flat=True) if name in ROLE_LANDINGS]
    if len(roles) != 1:
        return None
    url_name, query = ROLE_LANDINGS[roles[0]]
    return f"{reverse(url_name)}?{urlencode(query)}"


def _with_landing(login_view):
    def login(request: HttpRequest, extra_context=None):
        response = login_view(request, extra_context)
        if request.method != "POST" or response.status_code != 302:
            return response
        # Only a sign-in heading for the index is sent to the role's queue; a `next` naming
        # another page (a link someone followed) is kept.
        index = reverse("admin:index")
        target = response.get("Location", "")
        if target not in ("", index) or not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}
        ):
            return response
        landing = landing_url(request.user)
        if landing:
            response["Location"] = landing
        return response

    return login


def install(site: admin.AdminSite) -> None:
    # An instance attribute, read by AdminSite.get_urls when the URLconf is first built.
    site.login = _with_landing(site.login)  # type: ignore[method-assign]
