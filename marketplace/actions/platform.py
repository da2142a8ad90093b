"""Staff-set platform parameters; every change is recorded with who made it."""

import logging

from django.db import transaction

from marketplace.errors import InvalidInput
from marketplace.models import User
from marketplace.models.orders import PlatformSettings, PlatformSettingsChange
from marketplace.selectors import platform_settings, platform_settings_changed

logger = logging.getLogger("marketplace.platform")

LIMITS = {
    "commission_rate_bp": (0, 5000),
    "payment_minutes": (5, 24 * 60),
    "video_upload_hours": (1, 24 * 7),
    "video_confirm_hours": (1, 24 * 7),
    "complete_after_delivered_hours": (1, 24 * 30),
    "complete_after_shipped_days": (1, 60),
    "offer_expiry_hours": (1, 24 * 7),
    "offers_per_listing_per_day": (1, 100),
    "min_withdrawal_fen": (1, 10_000_000),
}


def check_platform_values(values: dict[str, int]) -> None:
    unknown = set(values) - set(LIMITS)
    if unknown:
        raise InvalidInput(
            "Unknown settings: %(names)s.",
            code="unknown_setting",
            params={"names": ", ".join(sorted(unknown))},
        )
    for name, value in values.items():
        low, high = LIMITS[name]
        if not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(
                "%(name)s must be between %(low)s and %(high)s.",
                code="invalid_setting",
                params={"name": name, "low": low, "high": high},
            )


def update_platform_settings(*, staff: User, values: dict[str, int]) -> PlatformSettings:
    check_platform_values(values)
    platform_settings()  # make sure the row exists
    # Not durable: the admin's change view already runs in a transaction.
    with transaction.atomic():
        current = PlatformSettings.objects.select_for_update().get(pk=1)
        for name, value in values.items():
            old = getattr(current, name)
            if old == value:
                continue
            PlatformSettingsChange.objects.create(
                staff=staff, field=name, old_value=str(old), new_value=str(value)
            )
            setattr(current, name, value)
            logger.info("platform setting %s: %s -> %s by %s", name, old, value, staff.username)
        current.save()
        platform_settings_changed()
    return current
