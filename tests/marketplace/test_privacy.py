"""Account deletion (注销), restoring it, erasure after the cooling-off period, the personal-data
export and the retention sweep (issue 23, docs/privacy.md)."""

import json
from datetime import timedelta

import pytest
from axes.models import AccessLog
from django.apps import apps
from django.core.files.storage import storages
from django.db import connection
from django.utils import timezone

from marketplace import personal_data
from marketplace.actions import privacy
from marketplace.models import (
    AccountDeletion,
    ApiToken,
    DataExport,
    IdempotencyRecord,
    Listing,
    ListingStatus,
    Order,
    PaymentNotification,
    RetentionRun,
    Review,
    User,
)
from marketplace.states import OrderStatus
from negotiation.models import Offer
from tests.conftest import ApiClient, assert_error
from tests.marketplace.order_helpers import listing_on_sale
from tests.marketplace.test_accounts import login_code, sign_in
from tests.marketplace.wallet_helpers import credit, make_account

pytestmark = pytest.mark.django_db

PHONE = "13912345678"
NAME = "王小明同学"
DETAIL = "科技园南区深南大道10000号"


def signed_in(anon, openid: str) -> tuple[ApiClient, User]:
    body = sign_in(anon, openid, nickname=NAME)
    user = User.objects.get(pk=body["user"]["id"])
    return ApiClient(body["token"]), user


def add_address(client: ApiClient) -> int:
    response = client.post(
        "/api/addresses",
        {"name": NAME, "phone": PHONE, "province": "广东省", "city": "深圳市",
         "district": "南山区", "detail": DETAIL, "is_default": True},
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def completed_purchase(buyer: ApiClient, make_client) -> Order:
    """An order the buyer paid and received: history the books keep."""
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=5_000)
    order = Order.objects.create(
        order_no=f"T{listing.pk:08d}", buyer=buyer.user, seller=seller.user, listing=listing,
        title=listing.title, price_fen=5_000, status=OrderStatus.COMPLETED,
        address={"name": NAME, "phone": PHONE, "province": "广东省", "city": "深圳市",
                 "district": "南山区", "detail": DETAIL},
    )
    Listing.objects.filter(pk=listing.pk).update(status=ListingStatus.SOLD)
    Review.objects.create(order=order, buyer=buyer.user, seller=seller.user, rating=5, comment="好")
    return order


def exported(client: ApiClient, capture) -> dict:
    """GET /api/me/export as the client sees it: 202 while the task builds it, then the link."""
    with capture(execute=True):
        first = client.get("/api/me/export")
    if first.status_code == 202:
        assert first.json()["status"] == "pending"
        first = client.get("/api/me/export")
    assert first.status_code == 200, first.content
    return first.json()


@pytest.fixture
def member(anon):
    client, user = signed_in(anon, "openid-leaving")
    client.user = user
    return client, user


# --- refusing ----------------------------------------------------------------------------------


def test_an_order_in_progress_blocks_deletion_and_nothing_changes(member, make_client):
    client, user = member
    seller = make_client()
    listing = listing_on_sale(seller=seller.user)
    Order.objects.create(
        order_no="T1", buyer=user, seller=seller.user, listing=listing, title="x",
        price_fen=100, address={}, status=OrderStatus.AWAITING_SHIPMENT,
    )
    body = assert_error(client.post("/api/me/deletion"), 409, "deletion_blocked")
    assert [blocker["code"] for blocker in body["errors"]] == ["order_in_progress"]
    assert body["errors"][0]["message"]
    assert client.get("/api/me").status_code == 200
    assert not AccountDeletion.objects.exists()


def test_every_kind_of_unfinished_business_is_listed(member, make_client):
    client, user = member
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=10_000)
    add_address(client)
    assert client.post(f"/api/listings/{listing.pk}/offers", {"price": 8_000}).status_code == 201
    credit(user, 500)
    account = make_account(user)
    assert client.post(
        "/api/wallet/withdrawals", {"amount": 200, "account_id": account.pk}
    ).status_code == 201
    body = assert_error(client.post("/api/me/deletion"), 409, "deletion_blocked")
    assert {blocker["code"] for blocker in body["errors"]} == {
        "offer_in_progress", "withdrawal_in_progress", "balance_not_zero",
    }


def test_a_seller_with_a_live_offer_on_their_listing_cannot_leave(member, make_client):
    client, user = member
    listing = listing_on_sale(seller=user, price_fen=10_000)
    buyer = make_client()
    add_address(buyer)
    assert buyer.post(f"/api/listings/{listing.pk}/offers", {"price": 9_000}).status_code == 201
    body = assert_error(client.post("/api/me/deletion"), 409, "deletion_blocked")
    assert [blocker["code"] for blocker in body["errors"]] == ["offer_in_progress"]


# --- closing and coming back -------------------------------------------------------------------


def test_closing_signs_out_shelves_listings_and_frees_the_openid(member, anon):
    client, user = member
    on_sale = listing_on_sale(seller=user)
    response = client.post("/api/me/deletion")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "closed"
    assert body["erase_after"].endswith("+08:00")

    assert client.get("/api/me").status_code == 401
    assert Listing.objects.get(pk=on_sale.pk).status == ListingStatus.OFF_SHELF
    assert anon.get(f"/api/listings/{on_sale.pk}").status_code == 404
    assert anon.get(f"/api/users/{user.pk}").status_code == 404
    assert_error(client.post("/api/me/deletion"), 401)

    fresh = sign_in(anon, "openid-leaving")
    assert fresh["user"]["id"] != user.pk
    assert fresh["user"]["nickname"] == ""
    assert fresh["restorable_until"] == body["erase_after"]


def test_signing_in_with_restore_reopens_the_closed_account(member, anon):
    client, user = member
    assert client.post("/api/me/deletion").status_code == 200
    restored = sign_in(anon, "openid-leaving", restore_account=True)
    assert restored["user"]["id"] == user.pk
    assert restored["user"]["nickname"] == NAME
    assert restored["restorable_until"] is None
    assert AccountDeletion.objects.get(user=user).status == AccountDeletion.Status.RESTORED
    assert ApiClient(restored["token"]).get("/api/me").status_code == 200
    # Nothing left to erase.
    assert privacy.erase_due_accounts(now=timezone.now() + timedelta(days=30)) == 0
    assert User.objects.get(pk=user.pk).nickname == NAME


def test_an_unused_fresh_account_gives_way_to_the_restored_one(member, anon):
    client, user = member
    client.post("/api/me/deletion")
    fresh = sign_in(anon, "openid-leaving")
    restored = sign_in(anon, "openid-leaving", restore_account=True)
    assert restored["user"]["id"] == user.pk
    assert ApiClient(fresh["token"]).get("/api/me").status_code == 401
    assert User.objects.filter(openid="openid-leaving").get().pk == user.pk


def test_a_fresh_account_in_use_keeps_the_openid(member, anon):
    client, user = member
    client.post("/api/me/deletion")
    fresh = sign_in(anon, "openid-leaving")
    add_address(ApiClient(fresh["token"]))
    code = login_code(anon, "openid-leaving")
    response = anon.post("/api/auth/wechat-login", {"code": code, "restore_account": True})
    assert_error(response, 409, "account_exists")
    assert User.objects.get(openid="openid-leaving").pk == fresh["user"]["id"]


def test_restore_after_erasure_starts_a_fresh_account(member, anon):
    client, user = member
    client.post("/api/me/deletion")
    assert privacy.erase_due_accounts(now=timezone.now() + timedelta(days=16)) == 1
    again = sign_in(anon, "openid-leaving", restore_account=True)
    assert again["user"]["id"] != user.pk


# --- erasing -----------------------------------------------------------------------------------


def _tables_holding(needle: str) -> list[str]:
    """Every table and text column of ours (the sandbox plays WeChat: its rows are WeChat's)
    whose value contains `needle`."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table.startswith(("sandbox_", "django_migrations")):
                continue
            for column in connection.introspection.get_table_description(cursor, table):
                quoted_table = connection.ops.quote_name(table)
                quoted = connection.ops.quote_name(column.name)
                cursor.execute(
                    f"SELECT COUNT(*) FROM {quoted_table} WHERE CAST({quoted} AS TEXT) LIKE %s",  # noqa: S608
                    [f"%{needle}%"],
                )
                if cursor.fetchone()[0]:
                    hits.append(f"{table}.{column.name}")
    return hits


def test_after_the_cooling_off_period_no_personal_data_is_left(
    member, anon, make_client, django_capture_on_commit_callbacks
):
    client, user = member
    client.post("/api/auth/phone", {"code": login_code_for_phone(anon)})
    add_address(client)
    make_account(user, holder_name=NAME)
    order = completed_purchase(client, make_client)
    asked_about = listing_on_sale(seller=make_client().user)
    thread = client.post(f"/api/listings/{asked_about.pk}/conversation").json()
    sent = client.post(
        f"/api/conversations/{thread['id']}/messages",
        {"kind": "text", "text": f"我是{NAME}，电话 {PHONE}", "client_id": "erase-1"},
    )
    assert sent.status_code == 201, sent.content
    exported(client, django_capture_on_commit_callbacks)
    assert _tables_holding(PHONE) and _tables_holding(NAME) and _tables_holding(DETAIL)

    assert client.post("/api/me/deletion").status_code == 200
    # Still there during the cooling-off period: the person may come back.
    assert privacy.erase_due_accounts(now=timezone.now() + timedelta(days=14)) == 0
    assert _tables_holding(PHONE)

    assert privacy.erase_due_accounts(now=timezone.now() + timedelta(days=15, minutes=1)) == 1
    for needle in (PHONE, NAME, DETAIL, "openid-leaving"):
        assert _tables_holding(needle) == [], needle
    # The books keep the order, its amount and the review, pseudonymised.
    kept = Order.objects.get(pk=order.pk)
    assert kept.buyer_id == user.pk and kept.price_fen == 5_000
    assert kept.address["name"] == privacy.ERASED_NAME
    assert Review.objects.get(order=order).buyer.nickname == privacy.ERASED_NAME
    assert AccountDeletion.objects.get(user=user).status == AccountDeletion.Status.ERASED
    # A second sweep finds nothing to do.
    assert privacy.erase_due_accounts(now=timezone.now() + timedelta(days=30)) == 0


def login_code_for_phone(anon) -> str:
    response = anon.post("/sandbox/wechat/phone-code", {"phone": PHONE})
    assert response.status_code == 200, response.content
    return response.json()["code"]


# --- my data -----------------------------------------------------------------------------------


def test_the_export_holds_every_kind_of_row_the_user_owns(
    member, anon, make_client, django_capture_on_commit_callbacks
):
    client, user = member
    add_address(client)
    listing_on_sale(seller=user, title="我的旧相机")
    seller = make_client()
    theirs = listing_on_sale(seller=seller.user, price_fen=10_000)
    client.post(f"/api/listings/{theirs.pk}/offers", {"price": 8_000})
    client.post(f"/api/listings/{theirs.pk}/favorite")
    client.post(f"/api/users/{seller.user.pk}/follow")
    completed_purchase(client, make_client)
    credit(user, 300)
    account = make_account(user)
    assert client.post(
        "/api/wallet/withdrawals", {"amount": 100, "account_id": account.pk}
    ).status_code == 201

    thread = client.get("/api/conversations").json()["items"][0]  # opened by the offer
    sent = client.post(
        f"/api/conversations/{thread['id']}/messages",
        {"kind": "text", "text": "还在吗？", "client_id": "privacy-1"},
    )
    assert sent.status_code == 201, sent.content
    pest = make_client()
    assert client.post(f"/api/users/{pest.user.pk}/block").status_code == 200
    assert client.post(
        "/api/reports", {"target_type": "user", "target_id": pest.user.pk, "reason": "abuse"}
    ).status_code == 201

    body = exported(client, django_capture_on_commit_callbacks)
    assert body["status"] == "ready"
    document = anon.client.get(body["url"].split("8000", 1)[-1])
    assert document.status_code == 200
    assert document["Content-Disposition"].startswith("attachment")
    data = json.loads(b"".join(document.streaming_content))
    for section in personal_data.SECTIONS:
        assert data[section], section
    assert data["profile"]["id"] == user.pk
    assert data["addresses"][0]["phone"] == "139****5678"
    assert {listing["title"] for listing in data["listings"]} == {"我的旧相机"}
    assert len(data["orders"]) == 1 and data["orders"][0]["address"]["phone"] == "139****5678"
    assert data["payout_accounts"][0]["account_no"].startswith("****")
    assert [f["listing_id"] for f in data["favorites"]] == [theirs.pk]
    assert [f["seller_id"] for f in data["following"]] == [seller.user.pk]
    (written,) = [c["messages_written"] for c in data["conversations"] if c["id"] == thread["id"]]
    assert [m["text"] for m in written][-1] == "还在吗？"  # after the offer's own entry
    assert [b["user_id"] for b in data["blocks"]] == [pest.user.pk]

    # The same export is handed out again while it is valid.
    assert client.get("/api/me/export").json()["url"] == body["url"]


def test_every_model_pointing_at_a_user_is_exported_or_says_why_not():
    covered = {
        "marketplace.Address", "marketplace.Listing", "marketplace.Order", "marketplace.Review",
        "marketplace.PayoutAccount", "marketplace.Withdrawal", "marketplace.LedgerEntry",
        "negotiation.Offer", "marketplace.Favorite", "marketplace.Follow",
        "realtime.Notification", "negotiation.Conversation", "negotiation.Message",
        "negotiation.UserBlock", "negotiation.Report", *personal_data.NOT_EXPORTED,
    }
    missing = set()
    for model in apps.get_models():
        if model._meta.app_label in {"sandbox", "admin", "auth", "axes"}:
            continue
        label = f"{model._meta.app_label}.{model.__name__}"
        for field in model._meta.get_fields():
            points_at_user = getattr(field, "related_model", None) is User and field.concrete
            owned = points_at_user and field.name not in personal_data.STAFF_FIELDS
            if owned and label not in covered:
                missing.add(f"{label}.{field.name}")
    assert not missing, f"add these to marketplace/personal_data.py: {sorted(missing)}"


def test_a_tampered_or_expired_export_link_is_refused(
    member, anon, settings, django_capture_on_commit_callbacks
):
    client, _user = member
    url = exported(client, django_capture_on_commit_callbacks)["url"].split("8000", 1)[-1]
    assert anon.get(url).status_code == 200
    assert_error(anon.get(url[:-2] + "xx"), 404, "link_expired")
    DataExport.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(anon.get(url), 404, "link_expired")
    settings.DATA_EXPORT_TTL_SECONDS = 0
    assert_error(anon.get(url), 404, "link_expired")


# --- retention ---------------------------------------------------------------------------------


def test_the_retention_sweep_deletes_exactly_what_is_past_its_period(member, settings):
    _client, user = member
    now = timezone.now()
    days = settings.RETENTION_DAYS

    def aged(model, field: str, age_days: float, **values):
        row = model.objects.create(**values)
        model.objects.filter(pk=row.pk).update(**{field: now - timedelta(days=age_days)})
        return row.pk

    old_note = aged(PaymentNotification, "received_at", days["payment_notifications"] + 1,
                    kind="payment", body="{}")
    new_note = aged(PaymentNotification, "received_at", days["payment_notifications"] - 1,
                    kind="payment", body="{}")
    old_key = aged(IdempotencyRecord, "created_at", days["idempotency_records"] + 1,
                   user=user, scope="s", key="old")
    new_key = aged(IdempotencyRecord, "created_at", days["idempotency_records"] - 1,
                   user=user, scope="s", key="new")
    old_token = aged(ApiToken, "revoked_at", days["api_tokens"] + 1, user=user,
                     key_hash="a" * 64, expires_at=now + timedelta(days=1))
    live_token = ApiToken.objects.filter(user=user, revoked_at__isnull=True).get().pk
    old_log = aged(AccessLog, "attempt_time", days["staff_sign_in_logs"] + 1,
                   username="staff", ip_address="10.0.0.1", user_agent="x")
    new_log = aged(AccessLog, "attempt_time", days["staff_sign_in_logs"] - 1,
                   username="staff", ip_address="10.0.0.1", user_agent="x")

    run = privacy.sweep_retention(now=now)

    assert not PaymentNotification.objects.filter(pk=old_note).exists()
    assert PaymentNotification.objects.filter(pk=new_note).exists()
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [new_key]
    assert not ApiToken.objects.filter(pk=old_token).exists()
    assert ApiToken.objects.filter(pk=live_token).exists()
    assert list(AccessLog.objects.values_list("pk", flat=True)) == [new_log]
    assert old_key and old_log
    assert run.counts == {
        "payment_notifications": 1, "idempotency_records": 1, "api_tokens": 1,
        "staff_sign_in_logs": 1, "data_exports": 0,
    }
    assert RetentionRun.objects.get().finished_at is not None
    assert privacy.sweep_retention(now=now).counts["payment_notifications"] == 0


def test_expired_exports_and_their_files_are_swept(member, django_capture_on_commit_callbacks):
    client, _user = member
    exported(client, django_capture_on_commit_callbacks)
    export = DataExport.objects.get()
    assert storages["private"].exists(export.file)
    DataExport.objects.update(expires_at=timezone.now() - timedelta(days=2))
    assert privacy.sweep_retention().counts["data_exports"] == 1
    assert not storages["private"].exists(export.file)
    assert not Offer.objects.exists()
