"""Reads, with their joins applied. Views call these; they never write."""

from django.db.models import QuerySet

from marketplace.models import Address, User


def public_user(*, user_id: int) -> User | None:
    """A user as others may see them: not banned, not staff-only accounts."""
    return User.objects.filter(pk=user_id, is_banned=False, openid__isnull=False).first()


def addresses_of(*, user: User) -> QuerySet[Address]:
    return Address.objects.filter(user=user).order_by("-is_default", "-id")
