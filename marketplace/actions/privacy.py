"""Account deletion (注销), restoring within the cooling-off period, erasure, and retention.

SPEC §1: deletion is refused while something is in progress; then the account closes at once
and its personal data is erased after the cooling-off period. What the books need (orders,
ledger entries, refunds, withdrawals, reviews) is kept, pseudonymised: the person behind it is
shown as ERASED_NAME. docs/privacy.md lists what is erased, what is kept and for how long.
"""

import json
import logging
import secrets
from datetime import timedelta
from functools import partial

from axes.models import AccessFailureLog, AccessLog  # type: ignore[import-untyped]
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.hashers import make_password
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from marketplace import storefront
from marketplace.actions import social
from marketplace.actions.accounts import revoke_all_tokens
from marketplace.actions.uploads import delete_files
from marketplace.errors import Conflict
from marketplace.models import (
    AccountDeletion,
    Address,
    ApiToken,
    DataExport,
    IdempotencyRecord,
    ImageUpload,
    Listing,
    Order,
    PaymentNotification,
    PayoutAccount,
    RetentionRun,
    User,
    Withdrawal,
)
from marketplace.personal_data import personal_data
from marketplace.states import LISTING, TERMINAL, ListingStatus, WithdrawalStatus
from negotiation.models import Message, Offer, UserBlock
from negotiation.states import LIVE_STATUSES
from project.tasking import enqueue_on_commit
from realtime.models import Event

logger = logging.getLogger("marketplace.privacy")

ERASED_NAME = "已注销用户"
# What an erased order's shipping address becomes: same keys, nothing personal left.
ERASED_ADDRESS = {
    "name": ERASED_NAME,
    "phone": "",
    "province": "",
    "city": "",
    "district": "",
    "detail": "",
}
# Listings a closing account takes off the shelf; a reserved or sold one is an order's.
SHELVED_ON_CLOSE = (ListingStatus.ON_SALE, ListingStatus.PENDING_REVIEW, ListingStatus.REJECTED)


# --- closing -----------------------------------------------------------------------------------


def deletion_blockers(user: User) -> list[dict]:
    """What the user must finish before the account can close: one entry per kind, with a
    message the client shows as is. Empty when nothing is in progress."""
    blockers = []
    orders = Order.objects.filter(Q(buyer=user) | Q(seller=user)).exclude(status__in=TERMINAL)
    if count := orders.count():
        blockers.append(
            {"code": "order_in_progress", "count": count,
             "message": _("Finish or cancel your orders in progress first.")}
        )
    offers = Offer.objects.filter(Q(buyer=user) | Q(seller=user), status__in=LIVE_STATUSES)
    if count := offers.count():
        blockers.append(
            {"code": "offer_in_progress", "count": count,
             "message": _("Withdraw or answer your open offers first.")}
        )
    withdrawals = Withdrawal.objects.filter(
        user=user,
        status__in=[WithdrawalStatus.PENDING, WithdrawalStatus.AWAITING_USER_CONFIRMATION],
    )
    if count := withdrawals.count():
        blockers.append(
            {"code": "withdrawal_in_progress", "count": count,
             "message": _("Wait until your withdrawals are paid out.")}
        )
    wallet = getattr(user, "wallet", None)
    if wallet is not None and (wallet.available_fen or wallet.frozen_fen):
        blockers.append(
            {"code": "balance_not_zero", "count": wallet.available_fen + wallet.frozen_fen,
             "message": _("Withdraw your balance first.")}
        )
    return blockers


def close_account(*, user: User) -> AccountDeletion:
    """Closes the account at once (SPEC §1): signed out everywhere, sockets closed, listings off
    the shelf, the openid freed so that signing in again starts a fresh account; the personal
    data is erased once the cooling-off period has passed (erase_due_accounts)."""
    with transaction.atomic(durable=True):
        # The user's row lock orders this against a second deletion and against sign-in.
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.is_active:
            raise Conflict(_("This account is already closed."), code="account_closed")
        if blockers := deletion_blockers(locked):
            raise Conflict(
                _("Finish what is in progress before closing your account."),
                code="deletion_blocked",
                errors=blockers,
            )
        now = timezone.now()
        deletion, _created = AccountDeletion.objects.update_or_create(
            user=locked,
            defaults={
                "status": AccountDeletion.Status.CLOSED,
                "openid": locked.openid or "",
                "erase_after": now + timedelta(days=settings.ACCOUNT_DELETION_COOLING_OFF_DAYS),
                "erased_at": None,
                "restored_at": None,
            },
        )
        # The username embeds the openid: a fresh account for the same person needs it free.
        User.objects.filter(pk=locked.pk).update(
            is_active=False, openid=None, username=f"closed_{locked.pk}"
        )
        shelved = LISTING.move_rows(
            Listing.objects.filter(seller=locked), ListingStatus.OFF_SHELF, among=SHELVED_ON_CLOSE
        )
        if shelved:
            storefront.changed()
        revoke_all_tokens(user=locked)
    logger.info("account closed user=%s erase_after=%s", user.pk, deletion.erase_after)
    return deletion


# --- erasing -----------------------------------------------------------------------------------


def erase_due_accounts(*, now=None, batch: int = 100) -> int:
    """Erases every closed account whose cooling-off period is over; returns how many."""
    now = now or timezone.now()
    due = list(
        AccountDeletion.objects.filter(
            status=AccountDeletion.Status.CLOSED, erase_after__lte=now
        ).values_list("pk", flat=True)[:batch]
    )
    return sum(1 for deletion_id in due if erase_account(deletion_id=deletion_id))


def erase_account(*, deletion_id: int) -> bool:
    """One closed account's personal data, erased; what the books need, pseudonymised.
    False when it is no longer due (restored meanwhile) or something is in progress again."""
    with transaction.atomic(durable=True):
        deletion = (
            AccountDeletion.objects.select_for_update().filter(pk=deletion_id).first()
        )
        if deletion is None or deletion.status != AccountDeletion.Status.CLOSED:
            return False
        user = User.objects.select_for_update().get(pk=deletion.user_id)
        if blockers := deletion_blockers(user):
            # An order that was in flight when the account closed: erase once it has ended.
            logger.warning("erasure of user=%s postponed: %s", user.pk, blockers)
            return False
        _erase_personal_data(user)
        deletion.status, deletion.erased_at, deletion.openid = (
            AccountDeletion.Status.ERASED, timezone.now(), ""
        )
        deletion.save(update_fields=["status", "erased_at", "openid"])
    logger.info("account erased user=%s", user.pk)
    return True


def _erase_personal_data(user: User) -> None:
    if user.avatar_file:
        # Erasure also blanks the snapshots of the user's sales below: nothing shows it any more.
        transaction.on_commit(partial(default_storage.delete, user.avatar_file))
    User.objects.filter(pk=user.pk).update(
        username=f"erased_{user.pk}", nickname=ERASED_NAME, avatar_url="", avatar_file="", phone="",
        phone_country_code="", unionid=None, openid=None, first_name="", last_name="",
        email="", password=make_password(None),
    )
    Address.objects.filter(user=user).delete()
    social.forget_user(user=user)
    PayoutAccount.objects.filter(user=user).update(
        holder_name=ERASED_NAME, bank_name="", account_no_encrypted="", account_last4="",
        deleted_at=timezone.now(),
    )
    Order.objects.filter(buyer=user).update(address=ERASED_ADDRESS)
    # The payee's real name sent with a large WeChat transfer; the bill number stays traceable.
    Withdrawal.objects.filter(user=user).update(real_name_encrypted="")
    # The item snapshot keeps the seller's name and face for the buyer (issue 18), not once the
    # seller is erased.
    Order.objects.filter(seller=user).update(seller_nickname=ERASED_NAME, seller_avatar_url="")
    # Durable events are delivery copies of orders and offers (addresses, nicknames): the
    # user's own, and the other parties' copies of objects the user was a party to.
    # Chat: what the user wrote goes; the other side keeps the thread and its own messages.
    # The images sent go too: private files nothing could show once the messages let go.
    sent = Message.objects.filter(sender=user, image__isnull=False).values("image_id")
    sent_images = list(ImageUpload.objects.filter(owner=user, pk__in=sent))
    Message.objects.filter(sender=user).update(text="", image=None, client_id="")
    ImageUpload.objects.filter(pk__in=[image.pk for image in sent_images]).delete()
    private_names = [name for image in sent_images for name in (image.file, image.thumbnail)]
    transaction.on_commit(partial(delete_files, private_names, storage="private"))
    UserBlock.objects.filter(Q(blocker=user) | Q(blocked=user)).delete()
    Event.objects.filter(
        Q(user_id=user.pk)
        | Q(data__buyer_id=user.pk)
        | Q(data__seller_id=user.pk)
        | Q(data__sender_id=user.pk)
    ).delete()
    IdempotencyRecord.objects.filter(user=user).delete()
    ApiToken.objects.filter(user=user).delete()
    for export in DataExport.objects.filter(user=user).exclude(file=""):
        storages["private"].delete(export.file)
    DataExport.objects.filter(user=user).delete()
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
    ).update(object_repr=f"{ERASED_NAME} #{user.pk}", change_message="")


# --- my data -----------------------------------------------------------------------------------


def request_export(*, user: User) -> DataExport:
    """The user's export: the newest one still valid, else a new one built by a task."""
    now = timezone.now()
    current = (
        DataExport.objects.filter(user=user)
        .filter(Q(status=DataExport.Status.PENDING) | Q(expires_at__gt=now))
        .order_by("-id")
        .first()
    )
    if current is not None and not _stuck(current, now):
        return current
    with transaction.atomic(durable=True):
        export = DataExport.objects.create(user=user)
        enqueue_on_commit("marketplace.tasks.build_data_export", export.pk)
    return export


def _stuck(export: DataExport, now) -> bool:
    """A pending export whose task was lost (the worker died): start again."""
    return export.status == DataExport.Status.PENDING and export.created_at < now - timedelta(
        minutes=10
    )


def build_export(*, export_id: int) -> None:
    """Writes the document to private storage; the API hands out a signed URL to it."""
    export = DataExport.objects.select_related("user").filter(pk=export_id).first()
    if export is None or export.status != DataExport.Status.PENDING:
        return
    document = json.dumps(
        personal_data(export.user), cls=DjangoJSONEncoder, ensure_ascii=False, indent=1
    ).encode("utf-8")
    name = storages["private"].save(
        f"exports/{export.user_id}-{secrets.token_hex(12)}.json", ContentFile(document)
    )
    now = timezone.now()
    DataExport.objects.filter(pk=export.pk, status=DataExport.Status.PENDING).update(
        status=DataExport.Status.READY,
        file=name,
        ready_at=now,
        expires_at=now + timedelta(seconds=settings.DATA_EXPORT_TTL_SECONDS),
    )
    logger.info("data export %s ready (%d bytes)", export.pk, len(document))


# --- retention ---------------------------------------------------------------------------------


def _older_than(days: int, now):
    return now - timedelta(days=days)


def sweep_retention(*, now=None) -> RetentionRun:
    """Deletes what is past its retention period (settings.RETENTION_DAYS, docs/privacy.md),
    kind by kind, and records the counts."""
    now = now or timezone.now()
    days = settings.RETENTION_DAYS
    run = RetentionRun.objects.create()
    counts = {
        "payment_notifications": PaymentNotification.objects.filter(
            received_at__lt=_older_than(days["payment_notifications"], now)
        ).delete()[0],
        "idempotency_records": IdempotencyRecord.objects.filter(
            created_at__lt=_older_than(days["idempotency_records"], now)
        ).delete()[0],
        "api_tokens": ApiToken.objects.filter(
            Q(revoked_at__lt=_older_than(days["api_tokens"], now))
            | Q(expires_at__lt=_older_than(days["api_tokens"], now))
        ).delete()[0],
        "staff_sign_in_logs": _sweep_staff_sign_in_logs(_older_than(days["staff_sign_in_logs"], now)),
        "data_exports": _sweep_exports(_older_than(days["data_exports"], now)),
    }
    run.counts, run.finished_at = counts, timezone.now()
    run.save(update_fields=["counts", "finished_at"])
    logger.info("retention sweep: %s", counts)
    return run


def _sweep_staff_sign_in_logs(cutoff) -> int:
    return (
        AccessLog.objects.filter(attempt_time__lt=cutoff).delete()[0]
        + AccessFailureLog.objects.filter(attempt_time__lt=cutoff).delete()[0]
    )


def _sweep_exports(cutoff) -> int:
    expired = list(DataExport.objects.filter(expires_at__lt=cutoff))
    for export in expired:
        if export.file:
            storages["private"].delete(export.file)
    return DataExport.objects.filter(pk__in=[export.pk for export in expired]).delete()[0]
