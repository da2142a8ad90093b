
"""Wallet API: balance, ledger, payout accounts, withdrawals (through the HTTP client)."""

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings

from marketplace.actions import wallet as wallet_actions
from marketplace.models import User
from marketplace.models.orders import PlatformSettings
from marketplace.models.wallet import LedgerEntry, PayoutAccount, Wallet, Withdrawal
from marketplace.selectors import platform_settings, platform_settings_changed
from realtime.models import Event
from tests.conftest import assert_error
from tests.marketplace.wallet_helpers import (
    VALID_CARD,
    assert_ledger_invariant,
    credit,
    luhn_card,
    make_account,
)

pytestmark = pytest.mark.django_db

ALIPAY = {"type": "alipay", "holder_name": "张三", "account_no": "13800138000"}
WECHAT = {"type": "wechat", "holder_name": "李四", "account_no": "wxid_seller01"}
BANK = {
    "type": "bank",
    "holder_name": "王五",
    "account_no": VALID_CARD,
    "bank_name": "中国工商银行",
}


# --- Balance and ledger ----------------------------------------------------------------------


def test_wallet_of_a_new_user_is_zero_not_404(client_of):
    response = client_of.get("/api/wallet")
    assert response.status_code == 200
    assert response.json() == {"available": 0, "frozen": 0, "total_earned": 0}
    assert not Wallet.objects.exists()  # reading does not create one
    page = client_of.get("/api/wallet/entries").json()
    assert page == {"items": [], "next_cursor": None}


def test_wallet_requires_sign_in(anon):
    assert_error(anon.get("/api/wallet"), 401, "unauthorized")
    assert_error(anon.get("/api/wallet/entries"), 401)
    assert_error(anon.post("/api/wallet/withdrawals", {"amount": 100, "account_id": 1}), 401)


def test_balance_and_entries_follow_the_ledger(client_of, user):
    credit(user, 5000)
    credit(user, 2500)
    account = make_account(user)
    response = client_of.post("/api/wallet/withdrawals", {"amount": 3000, "account_id": account.pk})
    assert response.status_code == 201, response.content
    assert client_of.get("/api/wallet").json() == {
        "available": 4500,
        "frozen": 3000,
        "total_earned": 7500,
    }
    first = client_of.get("/api/wallet/entries", {"limit": 2}).json()
    assert [e["kind"] for e in first["items"]] == ["withdrawal_hold", "sale_credit"]
    hold = first["items"][0]
    assert hold["amount"] == -3000 and hold["balance_after"] == 4500
    assert hold["frozen_delta"] == 3000 and hold["frozen_after"] == 3000
    assert hold["withdrawal_id"] == response.json()["id"] and hold["order_no"] is None
    assert hold["at"].endswith("+08:00")  # the platform zone, as every time (project/wire.py)
    rest = client_of.get("/api/wallet/entries", {"cursor": first["next_cursor"]}).json()
    assert [e["amount"] for e in rest["items"]] == [5000] and rest["next_cursor"] is None
    assert_error(client_of.get("/api/wallet/entries", {"cursor": "junk"}), 400, "invalid_cursor")


def test_entries_show_only_my_ledger(client_of, make_client):
    other = make_client()
    credit(other.user, 900)
    assert client_of.get("/api/wallet/entries").json()["items"] == []


# --- Payout accounts -------------------------------------------------------------------------


@pytest.mark.parametrize("body", [ALIPAY, WECHAT, BANK], ids=["alipay", "wechat", "bank"])
def test_add_account_masks_the_number_and_encrypts_it(client_of, body):
    response = client_of.post("/api/wallet/accounts", body)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["account_no"] == "**** " + body["account_no"][-4:]
    assert data["type"] == body["type"] and data["holder_name"] == body["holder_name"]
    assert data["bank_name"] == body.get("bank_name")
    stored = PayoutAccount.objects.get(pk=data["id"])
    assert body["account_no"] not in stored.account_no_encrypted
    assert wallet_actions.reveal_account_no(stored) == body["account_no"]
    listed = client_of.get("/api/wallet/accounts").json()
    assert listed == [data]
    assert body["account_no"] not in str(listed)


def test_bank_card_spaces_are_ignored(client_of):
    spaced = " ".join(VALID_CARD[i : i + 4] for i in range(0, len(VALID_CARD), 4))
    response = client_of.post("/api/wallet/accounts", {**BANK, "account_no": spaced})
    assert response.status_code == 201
    assert response.json()["account_no"] == "**** " + VALID_CARD[-4:]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {**BANK, "account_no": VALID_CARD[:-1] + str((int(VALID_CARD[-1]) + 1) % 10)},
            "invalid_card_checksum",
        ),
        ({**BANK, "account_no": luhn_card("6222021000")}, "invalid_account_no"),  # 11 digits
        ({**BANK, "account_no": luhn_card("6" * 19)}, "invalid_account_no"),  # 20 digits
        ({**BANK, "account_no": "6222abcd12345678"}, "invalid_account_no"),
        ({**BANK, "bank_name": ""}, "bank_name_required"),
        ({**ALIPAY, "bank_name": "招商银行"}, "bank_name_not_allowed"),
        ({**ALIPAY, "account_no": "12345"}, "invalid_account_no"),
        ({**ALIPAY, "account_no": "not an email"}, "invalid_account_no"),
        ({**WECHAT, "account_no": "9abcdef"}, "invalid_account_no"),
        ({**WECHAT, "account_no": "ab"}, "invalid_account_no"),
        ({**ALIPAY, "type": "paypal"}, "validation_error"),
        ({**ALIPAY, "holder_name": "   "}, "validation_error"),
        ({**ALIPAY, "holder_name": "名" * 41}, "validation_error"),
        ({**ALIPAY, "account_no": "1" * 101}, "validation_error"),
        ({**ALIPAY, "user_id": 1}, "validation_error"),
        ({"type": "alipay", "holder_name": "张三"}, "validation_error"),
        ({**ALIPAY, "account_no": 13800138000}, "validation_error"),
    ],
)
def test_invalid_accounts_are_refused_and_nothing_is_stored(client_of, body, code):
    assert_error(client_of.post("/api/wallet/accounts", body), 422, code)
    assert not PayoutAccount.objects.exists()


def test_twelve_digit_card_and_alipay_email_are_accepted(client_of):
    card = luhn_card("62220210001")  # 12 digits
    assert client_of.post("/api/wallet/accounts", {**BANK, "account_no": card}).status_code == 201
    email = {**ALIPAY, "account_no": "seller@example.com"}
    assert client_of.post("/api/wallet/accounts", email).json()["account_no"] == "**** .com"


def test_at_most_ten_accounts(client_of, user):
    for _ in range(10):
        make_account(user)
    assert_error(client_of.post("/api/wallet/accounts", ALIPAY), 409, "account_limit")
    assert PayoutAccount.objects.filter(user=user).count() == 10
    first = PayoutAccount.objects.filter(user=user).first()
    assert client_of.delete(f"/api/wallet/accounts/{first.pk}").status_code == 204
    assert client_of.post("/api/wallet/accounts", ALIPAY).status_code == 201


def test_another_users_account_is_404(client_of, make_client):
    theirs = make_account(make_client().user)
    assert_error(client_of.delete(f"/api/wallet/accounts/{theirs.pk}"), 404, "account_not_found")
    assert_error(client_of.delete("/api/wallet/accounts/999999999999999999999"), 404)
    assert PayoutAccount.objects.filter(pk=theirs.pk).exists()
    credit(client_of.user, 1000)
    body = {"amount": 500, "account_id": theirs.pk}
    assert_error(client_of.post("/api/wallet/withdrawals", body), 404, "account_not_found")
    assert not Withdrawal.objects.exists()
    assert client_of.get("/api/wallet/accounts").json() == []


def test_delete_with_pending_withdrawal_is_409_then_allowed_once_settled(client_of, user):
    credit(user, 1000)
    account = make_account(user)
    withdrawal = wallet_actions.request_withdrawal(user=user, amount_fen=800, account_id=account.pk)
    response = client_of.delete(f"/api/wallet/accounts/{account.pk}")
    assert_error(response, 409, "account_has_pending_withdrawal")
    staff = User.objects.create(username="payer", is_staff=True)
    wallet_actions.mark_withdrawal_paid(staff=staff, withdrawal_id=withdrawal.pk, reference="T1")
    assert client_of.delete(f"/api/wallet/accounts/{account.pk}").status_code == 204
    # Hidden from the seller, kept for the paid withdrawal's record.
    assert client_of.get("/api/wallet/accounts").json() == []
    assert PayoutAccount.objects.get(pk=account.pk).deleted_at is not None
    assert client_of.get(f"/api/wallet/withdrawals/{withdrawal.pk}").json()["status"] == "paid"
    assert_error(client_of.delete(f"/api/wallet/accounts/{account.pk}"), 404)
    body = {"amount": 100, "account_id": account.pk}
    assert_error(client_of.post("/api/wallet/withdrawals", body), 404, "account_not_found")


def test_unused_account_is_deleted_outright(client_of, user):
    account = make_account(user)
    assert client_of.delete(f"/api/wallet/accounts/{account.pk}").status_code == 204
    assert not PayoutAccount.objects.filter(pk=account.pk).exists()


def test_key_rotation_keeps_numbers_readable(user):
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    with override_settings(PAYOUT_ENCRYPTION_KEYS=[old_key]):
        account = make_account(user, type="bank", account_no=VALID_CARD, bank_name="建设银行")
    with override_settings(PAYOUT_ENCRYPTION_KEYS=[new_key, old_key]):
        assert wallet_actions.rotate_payout_keys() == 1
    with override_settings(PAYOUT_ENCRYPTION_KEYS=[new_key]):
        account.refresh_from_db()
        assert wallet_actions.reveal_account_no(account) == VALID_CARD
    with override_settings(PAYOUT_ENCRYPTION_KEYS=[old_key]):
        assert wallet_actions.reveal_account_no(account) is None  # old key retired


def test_production_refuses_missing_or_development_payout_keys():
    from project.checks import _payout_key_problems

    def ids(keys: list[str]) -> list[str | None]:
        with override_settings(PAYOUT_ENCRYPTION_KEYS=keys):
            return [problem.id for problem in _payout_key_problems()]

    assert ids([]) == ["marketplace.E020"]
    assert ids([settings.DEV_PAYOUT_ENCRYPTION_KEY]) == ["marketplace.E020"]
    assert ids(["not-a-key"]) == ["marketplace.E021"]
    assert ids([Fernet.generate_key().decode()]) == []


# --- Withdrawals -----------------------------------------------------------------------------


def test_withdrawal_event_carries_the_withdrawal_as_rest_shows_it(client_of, user):
    credit(user, 10_000)
    response = _withdraw(client_of, 6000, make_account(user, **BANK).pk)
    assert response.status_code == 201, response.content
    assert Event.objects.get(user=user, type="withdrawal.updated").data == response.json()


def _withdraw(client, amount, account_id, **kw):
    return client.post(
        "/api/wallet/withdrawals", {"amount": amount, "account_id": account_id}, **kw
    )


def test_withdrawal_holds_the_amount_and_tells_the_user(client_of, user):
    credit(user, 10_000)
    account = make_account(user, **BANK)
    response = _withdraw(client_of, 6000, account.pk)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "pending" and data["amount"] == 6000
    assert data["account"]["account_no"] == "**** " + VALID_CARD[-4:]
    assert data["transfer_reference"] is None and data["decided_at"] is None
    wallet = assert_ledger_invariant(user)
    assert (wallet.available_fen, wallet.frozen_fen) == (4000, 6000)
    assert Event.objects.filter(user=user, type="withdrawal.updated").count() == 1
    assert client_of.get(f"/api/wallet/withdrawals/{data['id']}").json() == data
    assert client_of.get("/api/wallet/withdrawals").json()["items"] == [data]
    assert client_of.get("/api/wallet/withdrawals", {"status": "paid"}).json()["items"] == []


def test_withdrawal_limits(client_of, user):
    credit(user, 1000)
    account = make_account(user)
    PlatformSettings.objects.filter(pk=platform_settings().pk).update(min_withdrawal_fen=500)
    platform_settings_changed()  # as staff changes do
    assert_error(_withdraw(client_of, 499, account.pk), 422, "amount_below_minimum")
    assert_error(_withdraw(client_of, 1001, account.pk), 409, "insufficient_balance")
    for bad in (0, -5, "100", 10**13, None, 1.5):
        assert_error(_withdraw(client_of, bad, account.pk), 422, "validation_error")
    assert_error(_withdraw(client_of, 500, 0), 422, "validation_error")
    assert not Withdrawal.objects.exists()
    wallet = assert_ledger_invariant(user)
    assert wallet.available_fen == 1000 and wallet.frozen_fen == 0
    assert _withdraw(client_of, 1000, account.pk).status_code == 201  # the whole balance is fine


@pytest.mark.parametrize(
    "extra", [{"status": "paid"}, {"amount_fen": 1}, {"user_id": 1}, {"transfer_reference": "x"}]
)
def test_mass_assignment_is_refused(client_of, user, extra):
    credit(user, 1000)
    account = make_account(user)
    body = {"amount": 500, "account_id": account.pk, **extra}
    body_error = assert_error(client_of.post("/api/wallet/withdrawals", body), 422)
    assert body_error["errors"][0]["type"] == "extra_forbidden"
    assert not Withdrawal.objects.exists()


def test_idempotency_key_returns_the_first_answer_and_holds_once(client_of, user):
    credit(user, 3000)
    account = make_account(user)
    headers = {"Idempotency-Key": "withdraw-1"}
    first = _withdraw(client_of, 1000, account.pk, headers=headers)
    again = _withdraw(client_of, 1000, account.pk, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Withdrawal.objects.count() == 1
    assert assert_ledger_invariant(user).available_fen == 2000
    other = _withdraw(client_of, 1000, account.pk, headers={"Idempotency-Key": "withdraw-2"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    failed = _withdraw(client_of, 99_999, account.pk, headers={"Idempotency-Key": "too-much"})
    assert_error(failed, 409, "insufficient_balance")
    credit(user, 200_000)  # the stored answer stands even once the money is there
    replay = _withdraw(client_of, 99_999, account.pk, headers={"Idempotency-Key": "too-much"})
    assert_error(replay, 409, "insufficient_balance")
    assert Withdrawal.objects.count() == 2


def test_withdrawals_are_rate_limited(client_of, user):
    credit(user, 100_000)
    account = make_account(user)
    statuses = [_withdraw(client_of, 100, account.pk).status_code for _ in range(10)]
    assert statuses == [201] * 10
    assert_error(_withdraw(client_of, 100, account.pk), 429, "rate_limited")
    assert Withdrawal.objects.count() == 10


def test_another_users_withdrawal_is_404(client_of, make_client):
    other = make_client()
    credit(other.user, 1000)
    account = make_account(other.user)
    theirs = wallet_actions.request_withdrawal(
        user=other.user, amount_fen=500, account_id=account.pk
    )
    response = client_of.get(f"/api/wallet/withdrawals/{theirs.pk}")
    assert_error(response, 404, "withdrawal_not_found")
    assert client_of.get("/api/wallet/withdrawals").json()["items"] == []
    assert other.get(f"/api/wallet/withdrawals/{theirs.pk}").status_code == 200


def test_banned_user_cannot_withdraw(user):
    credit(user, 1000)
    account = make_account(user)
    User.objects.filter(pk=user.pk).update(is_banned=True)
    user.refresh_from_db()
    from marketplace.errors import Forbidden

    with pytest.raises(Forbidden):
        wallet_actions.request_withdrawal(user=user, amount_fen=500, account_id=account.pk)
    assert not Withdrawal.objects.exists()


def test_staff_decisions_post_entries_and_events(user):
    staff = User.objects.create(username="payer", is_staff=True)
    credit(user, 5000)
    account = make_account(user)
    paid = wallet_actions.request_withdrawal(user=user, amount_fen=2000, account_id=account.pk)
    rejected = wallet_actions.request_withdrawal(user=user, amount_fen=1000, account_id=account.pk)

    done, changed = wallet_actions.mark_withdrawal_paid(
        staff=staff, withdrawal_id=paid.pk, reference=" ALI-2024-001 "
    )
    assert changed and done.status == "paid" and done.transfer_reference == "ALI-2024-001"
    repeat, changed = wallet_actions.mark_withdrawal_paid(
        staff=staff, withdrawal_id=paid.pk, reference="ALI-2024-002"
    )
    assert changed is False and repeat.transfer_reference == "ALI-2024-001"
    assert LedgerEntry.objects.filter(withdrawal=paid).count() == 2  # hold + paid, no repeat

    _, changed = wallet_actions.reject_withdrawal(
        staff=staff, withdrawal_id=rejected.pk, reason="账户姓名不符"
    )
    assert changed
    _, again = wallet_actions.reject_withdrawal(
        staff=staff, withdrawal_id=rejected.pk, reason="again"
    )
    assert again is False

    from marketplace.errors import Conflict

    with pytest.raises(Conflict) as exc:
        wallet_actions.mark_withdrawal_paid(staff=staff, withdrawal_id=rejected.pk, reference="X")
    assert exc.value.code == "withdrawal_rejected"
    with pytest.raises(Conflict) as exc:
        wallet_actions.reject_withdrawal(staff=staff, withdrawal_id=paid.pk, reason="late")
    assert exc.value.code == "withdrawal_paid"

    wallet = assert_ledger_invariant(user)
    assert (wallet.available_fen, wallet.frozen_fen, wallet.total_earned_fen) == (3000, 0, 5000)
    kinds = list(
        LedgerEntry.objects.filter(wallet=wallet).order_by("id").values_list("kind", flat=True)
    )
    assert kinds == [
        "sale_credit",
        "withdrawal_hold",
        "withdrawal_hold",
        "withdrawal_paid",
        "withdrawal_release",
    ]
    events = [e.data for e in Event.objects.filter(user=user, type="withdrawal.updated")]
    assert [(e["id"], e["status"]) for e in events] == [
        (paid.pk, "pending"),
        (rejected.pk, "pending"),
        (paid.pk, "paid"),
        (rejected.pk, "rejected"),
    ]
    assert events[2]["transfer_reference"] == "ALI-2024-001"
    assert events[3]["reject_reason"] == "账户姓名不符"
