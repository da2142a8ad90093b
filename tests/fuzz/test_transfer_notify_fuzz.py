"""Fuzzing WeChat Pay's merchant transfer notification through the HTTP stack: signed and
encrypted resources with any values in their fields reach decryption, the checks and the action,
and the answer is always 204 or an API error, never a 5xx; nothing but an exact match settles."""

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.actions import wallet as wallet_actions
from marketplace.models.wallet import LedgerEntry, Withdrawal
from sandbox import wechatpay as sandbox
from tests.factories import UserFactory
from tests.gateways.test_kuaidi100_push_schema import _json
from tests.marketplace.wallet_helpers import credit

EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12")) * 5
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
)
PATH = "/api/payments/wechat/transfer-notify"
_text = st.text(max_size=30)


def _resource(out_bill_no: str, openid: str):
    return st.fixed_dictionaries(
        {},
        optional={
            "mchid": st.sampled_from(["1900000109"]) | _text | _json,
            "out_bill_no": st.sampled_from([out_bill_no]) | _text | _json,
            "transfer_bill_no": _text | _json,
            "state": st.sampled_from(["SUCCESS", "FAIL", "CANCELLED", "WAIT_USER_CONFIRM"]) | _json,
            "transfer_amount": st.integers() | _json,
            "openid": st.sampled_from([openid]) | _text | _json,
            "fail_reason": _text | _json,
        },
    )


@pytest.mark.django_db
def test_signed_transfer_notifications_with_any_resource_never_fail(anon, monkeypatch):
    monkeypatch.setattr("project.tasking.enqueue_all", lambda queued: None)
    seller = UserFactory()
    credit(seller, 10_000)
    withdrawal = wallet_actions.request_withdrawal(
        user=seller, amount_fen=10_000, to="wechat_balance"
    )
    transfer = withdrawal.transfer

    @FUZZ
    @given(data=st.data())
    def run(data):
        resource = data.draw(_resource(transfer.out_bill_no, transfer.openid) | _json)
        body = json.dumps(
            {
                "id": data.draw(_text),
                "create_time": "2026-12-01T10:00:00+08:00",
                "event_type": data.draw(
                    st.sampled_from(["MCHTRANSFER.BILL.FINISHED", "TRANSACTION.SUCCESS"])
                ),
                "resource_type": "encrypt-resource",
                "summary": "x",
                "resource": sandbox.encrypt_resource(
                    json.dumps(resource), associated_data="mch_payment"
                ),
            },
            ensure_ascii=False,
        )
        headers = sandbox.signed_headers(body, timestamp=int(time.time()))
        response = anon.client.post(
            PATH, body.encode(), content_type="application/json", headers=headers
        )
        assert response.status_code < 500, (response.status_code, response.content[:300])
        assert response.status_code in (204, 401), response.status_code

    run()
    withdrawal.refresh_from_db()
    # The fuzzer never sent an exact match of a settled state with the right amount... unless
    # it did, in which case it was settled exactly once.
    settled = LedgerEntry.objects.filter(unique_key=f"withdrawal:{withdrawal.pk}:settled").count()
    assert settled == (0 if withdrawal.status == Withdrawal.Status.PENDING else 1)
