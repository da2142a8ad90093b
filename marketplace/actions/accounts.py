"""Sign-in, tokens, profile, phone and the address book."""

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from marketplace import storefront
from marketplace.errors import Conflict, Forbidden, NotFound, Unprocessable
from marketplace.gateways import wechat
from marketplace.media import storage_url
from marketplace.models import AccountDeletion, Address, ApiToken, Listing, Order, User
from negotiation.models import Offer
from realtime.push import CLOSE_BANNED, CLOSE_UNAUTHENTICATED, close_sockets_on_commit

logger = logging.getLogger("marketplace.accounts")

ADDRESS_FIELDS = ("name", "phone", "province", "city", "district", "detail")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def check_not_banned(user: User) -> None:
    if user.is_banned:
        raise Forbidden("This account is suspended.", code="user_banned")


# Writing last_used_at on every request would serialise a user's requests on one row.
LAST_USED_RESOLUTION_SECONDS = 300


def user_for_token(raw: str) -> User | None:
    """The token's user, or None when the token is unknown, expired or revoked."""
    token = live_token(raw)
    return token.user if token is not None else None


def live_token(raw: str) -> ApiToken | None:
    """The token (with its user), or None when it is unknown, expired or revoked."""
    if not raw or len(raw) > 200:
        return None
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None:
        return None
    if (
        token.last_used_at is None
        or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def issue_token(*, user: User) -> str:
    raw = secrets.token_urlsafe(32)
    ApiToken.objects.create(
        user=user,
        key_hash=hash_token(raw),
        expires_at=timezone.now() + timedelta(days=settings.API_TOKEN_TTL_DAYS),
    )
    return raw


def revoke_token(*, raw: str) -> None:
    """Signs one device out: the token stops working and its open sockets close (4401)."""
    with transaction.atomic(durable=True):
        token = (
            ApiToken.objects.filter(key_hash=hash_token(raw), revoked_at__isnull=True)
            .values("pk", "user_id")
            .first()
        )
        if token is None:
            return
        ApiToken.objects.filter(pk=token["pk"]).update(revoked_at=timezone.now())
        close_sockets_on_commit(
            user_id=token["user_id"], token_id=token["pk"], code=CLOSE_UNAUTHENTICATED
        )


def revoke_all_tokens(*, user: User, close_code: int = CLOSE_UNAUTHENTICATED) -> int:
    """Signs the user out everywhere, sockets included (closed with `close_code`)."""
    revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    close_sockets_on_commit(user_id=user.pk, code=close_code)
    return revoked


def _find_or_create_wechat_user(*, openid: str, unionid: str | None) -> tuple[User, bool]:
    user = User.objects.filter(openid=openid).first()
    if user is not None:
        return user, False
    try:
        # Savepoint: two first sign-ins of the same person may race; the loser reads the winner.
        with transaction.atomic():
            user = User.objects.create(
                username=f"wx_{openid}"[:150], openid=openid, unionid=unionid
            )
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user, True
    except IntegrityError:
        return User.objects.get(openid=openid), False


@dataclass(frozen=True)
class SignIn:
    token: str
    user: User
    # When this WeChat account also has a closed account that `restore_account` could still
    # reopen (docs/privacy.md), the moment it will be erased; else None.
    restorable_until: datetime | None = None


def sign_in_with_wechat(
    *,
    code: str,
    nickname: str | None = None,
    avatar_url: str | None = None,
    restore_account: bool = False,
    admit: Callable[[str], None] | None = None,
) -> SignIn:
    """Exchange a wx.login code for a user and a fresh API token. A closed account's openid
    starts a fresh account, unless `restore_account` asks for the closed one back within its
    cooling-off period."""
    if avatar_url is not None:
        check_avatar_url(avatar_url)
    session = wechat.code_to_session(code)
    if admit is not None:
        # The caller's per-openid limit (the API's), before anything is written.
        admit(session.openid)
    with transaction.atomic(durable=True):
        restored = reopen_closed_account(openid=session.openid) if restore_account else None
        if restored is not None:
            user, created = restored, False
        else:
            user, created = _find_or_create_wechat_user(
                openid=session.openid, unionid=session.unionid
            )
        check_not_banned(user)
        changed = []
        if session.unionid and user.unionid != session.unionid:
            user.unionid = session.unionid
            changed.append("unionid")
        if nickname is not None and nickname != user.nickname:
            user.nickname = nickname
            changed.append("nickname")
        if avatar_url is not None and avatar_url != user.avatar_url:
            user.avatar_url = avatar_url
            changed.append("avatar_url")
        user.last_login = timezone.now()
        user.save(update_fields=[*changed, "last_login"])
        token = issue_token(user=user)
        until = None if restored is not None else restorable_until(session.openid)
    logger.info("sign-in user=%s new=%s restored=%s", user.pk, created, restored is not None)
    return SignIn(token=token, user=user, restorable_until=until)


def reopen_closed_account(*, openid: str) -> User | None:
    """The closed account of this openid, reopened, when it is still in its cooling-off period
    and the openid has no fresh account with anything in it; None when there is nothing to
    restore. Runs inside the sign-in's transaction."""
    deletion = (
        AccountDeletion.objects.select_for_update()
        .filter(openid=openid, status=AccountDeletion.Status.CLOSED)
        .select_related("user")
        .first()
    )
    if deletion is None:
        return None
    fresh = User.objects.select_for_update().filter(openid=openid).first()
    if fresh is not None:
        if _has_activity(fresh):
            raise Conflict(
                _("This WeChat account has a new account in use; the closed one stays closed."),
                code="account_exists",
            )
        # A fresh account signed in but never used: it gives the openid back.
        ApiToken.objects.filter(user=fresh).update(revoked_at=timezone.now())
        User.objects.filter(pk=fresh.pk).update(
            is_active=False, openid=None, username=f"closed_{fresh.pk}"
        )
    user = deletion.user
    user.is_active, user.openid, user.username = True, openid, f"wx_{openid}"[:150]
    user.save(update_fields=["is_active", "openid", "username"])
    deletion.status, deletion.restored_at = AccountDeletion.Status.RESTORED, timezone.now()
    deletion.openid = ""
    deletion.save(update_fields=["status", "restored_at", "openid"])
    logger.info("account restored user=%s", user.pk)
    return user


def restorable_until(openid: str):
    """When the closed account of this openid will be erased, if there is one to restore."""
    return (
        AccountDeletion.objects.filter(openid=openid, status=AccountDeletion.Status.CLOSED)
        .values_list("erase_after", flat=True)
        .first()
    )


def _has_activity(user: User) -> bool:
    return (
        Listing.objects.filter(seller=user).exists()
        or Order.objects.filter(Q(buyer=user) | Q(seller=user)).exists()
        or Offer.objects.filter(buyer=user).exists()
        or Address.objects.filter(user=user).exists()
    )


def bind_phone(*, user: User, code: str) -> str:
    number, country_code = wechat.phone_number(code)
    with transaction.atomic(durable=True):
        User.objects.filter(pk=user.pk).update(phone=number, phone_country_code=country_code)
    user.phone, user.phone_country_code = number, country_code
    return number


def check_avatar_url(url: str) -> None:
    """An avatar URL given as text: WeChat's own avatar hosts (settings.AVATAR_URL_HOSTS) over
    HTTPS, or a file of our own media; anything else is refused (issue 18). Our own uploads come
    through POST /api/me/avatar."""
    if url == "":
        return
    parts = urlsplit(url)
    own_media = settings.MEDIA_BASE_URL + "/" + settings.MEDIA_URL.strip("/") + "/"
    if url.startswith(own_media) and ".." not in parts.path:
        return
    if parts.scheme == "https" and parts.hostname in settings.AVATAR_URL_HOSTS and not (
        parts.username or parts.password or parts.port
    ):
        return
    raise Unprocessable(
        "avatar_url must be a WeChat avatar or an upload of ours (POST /api/me/avatar).",
        code="avatar_url_not_allowed",
        errors=[{"loc": ["body", "avatar_url"], "msg": "host not allowed", "type": "value_error"}],
    )


def update_profile(*, user: User, nickname: str | None, avatar_url: str | None) -> User:
    changed = []
    if nickname is not None:
        user.nickname = nickname
        changed.append("nickname")
    old_file = ""
    if avatar_url is not None:
        check_avatar_url(avatar_url)
        if avatar_url != user.avatar_url:
            old_file, user.avatar_file = user.avatar_file, ""
            changed.append("avatar_file")
        user.avatar_url = avatar_url
        changed.append("avatar_url")
    if changed:
        with transaction.atomic(durable=True):
            user.save(update_fields=changed)
            if old_file:
                _forget_avatar_file(old_file)
    return user


def set_uploaded_avatar(*, user: User, name: str) -> User:
    """Makes the stored file `name` (uploads.store_avatar) the user's avatar. The replaced file
    is deleted after commit, unless an order's snapshot still shows it."""
    with transaction.atomic(durable=True):
        locked = User.objects.select_for_update().get(pk=user.pk)
        old_file = locked.avatar_file
        user.avatar_file, user.avatar_url = name, storage_url(name)
        user.save(update_fields=["avatar_file", "avatar_url"])
        if old_file and old_file != name:
            _forget_avatar_file(old_file)
    logger.info("avatar user=%s %s", user.pk, name)
    return user


def _forget_avatar_file(name: str) -> None:
    """Deletes a replaced avatar file after commit when no order snapshot and no user shows it:
    an order renders its seller's face as it was (issue 18)."""
    url = storage_url(name)
    if Order.objects.filter(seller_avatar_url=url).exists():
        return
    if User.objects.filter(Q(avatar_file=name) | Q(avatar_url=url)).exists():
        return
    transaction.on_commit(lambda: default_storage.delete(name))


def _lock_address_book(user: User) -> None:
    """Every change to a user's addresses takes the user's row lock first, in the same order.

    The default is a property of the whole set (one per user, a partial unique index): locking
    only the address being changed let two 'set default' requests each clear the others, miss
    the row the other was making default, and fail on the index.
    """
    User.objects.select_for_update().filter(pk=user.pk).first()


def _clear_other_defaults(*, user: User, keep_id: int | None) -> None:
    others = Address.objects.filter(user=user, is_default=True)
    if keep_id is not None:
        others = others.exclude(pk=keep_id)
    others.update(is_default=False)


def create_address(*, user: User, data: dict) -> Address:
    with transaction.atomic(durable=True):
        # Also keeps two concurrent creations from both passing the limit check.
        _lock_address_book(user)
        existing = Address.objects.filter(user=user).count()
        if existing >= settings.MAX_ADDRESSES_PER_USER:
            raise Conflict(
                "At most %(limit)s addresses; delete one first.",
                params={"limit": settings.MAX_ADDRESSES_PER_USER},
                code="address_limit",
            )
        # The first address is the default whatever the client says.
        is_default = bool(data.get("is_default")) or existing == 0
        if is_default:
            _clear_other_defaults(user=user, keep_id=None)
        return Address.objects.create(
            user=user,
            is_default=is_default,
            city_code=data.get("city_code") or "",
            **{f: data[f] for f in ADDRESS_FIELDS},
        )


def access_address(*, user: User, address_id: int, lock: bool = False) -> Address:
    queryset = Address.objects.filter(user=user, pk=address_id)
    if lock:
        queryset = queryset.select_for_update()
    address = queryset.first()
    if address is None:
        raise NotFound("No such address.", code="address_not_found")
    return address


def update_address(*, user: User, address_id: int, data: dict) -> Address:
    with transaction.atomic(durable=True):
        _lock_address_book(user)
        address = access_address(user=user, address_id=address_id, lock=True)
        for name in (*ADDRESS_FIELDS, "city_code"):
            if data.get(name) is not None:
                setattr(address, name, data[name])
        if data.get("is_default") is True and not address.is_default:
            _clear_other_defaults(user=user, keep_id=address.pk)
            address.is_default = True
        elif data.get("is_default") is False and address.is_default:
            raise Conflict(
                "Choose another address as default instead.", code="default_address_required"
            )
        address.save()
        return address


def delete_address(*, user: User, address_id: int) -> None:
    with transaction.atomic(durable=True):
        _lock_address_book(user)
        address = access_address(user=user, address_id=address_id, lock=True)
        was_default = address.is_default
        address.delete()
        if was_default:
            successor = Address.objects.filter(user=user).order_by("-id").first()
            if successor is not None:
                successor.is_default = True
                successor.save(update_fields=["is_default"])


def ban_user(*, user: User, reason: str) -> None:
    """Suspends a user and signs them out everywhere. Their listings leave public views
    because public selectors exclude banned sellers."""
    with transaction.atomic(durable=True):
        User.objects.filter(pk=user.pk).update(
            is_banned=True, banned_at=timezone.now(), ban_reason=reason[:200]
        )
        revoke_all_tokens(user=user, close_code=CLOSE_BANNED)
        storefront.changed()
    logger.info("banned user=%s", user.pk)


def unban_user(*, user: User) -> None:
    with transaction.atomic(durable=True):
        User.objects.filter(pk=user.pk).update(is_banned=False, banned_at=None, ban_reason="")
        storefront.changed()
    logger.info("unbanned user=%s", user.pk)
