"""Issue 18: sign-in limits that survive carrier-grade NAT. Most mobile users in China share an
address, so the limit is per openid (10/min), with a per-address ceiling against floods (300/min
by default, settable) and failed code exchanges counted per address on their own."""

import pytest
from django.conf import settings
from django.test import override_settings

from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

LOGIN = "/api/auth/wechat-login"


def _code(anon, openid: str) -> str:
    return anon.post("/sandbox/wechat/login-code", {"openid": openid}).json()["code"]


def _login(anon, openid: str, **headers):
    return anon.post(LOGIN, {"code": _code(anon, openid)}, headers=headers)


def test_many_people_behind_one_address_all_sign_in(anon):
    # 40 people behind one carrier NAT address, more than the old 10/min per address.
    answers = [_login(anon, f"nat-user-{n}").status_code for n in range(40)]
    assert answers == [200] * 40


def test_one_openid_is_limited_to_ten_a_minute_wherever_it_comes_from(anon):
    answers = [
        _login(anon, "busy-openid", REMOTE_ADDR=f"10.1.0.{n}").status_code for n in range(11)
    ]
    assert answers[:10] == [200] * 10
    refused = _login(anon, "busy-openid")
    assert_error(refused, 429, "rate_limited")
    # Someone else on the same address is not affected.
    assert _login(anon, "another-openid").status_code == 200


@override_settings(RATE_LIMITS={**settings.RATE_LIMITS, "sign_in_address": "15/m"})
def test_the_per_address_ceiling_is_settable_and_holds(anon):
    answers = [_login(anon, f"flood-{n}").status_code for n in range(16)]
    assert answers[:15] == [200] * 15
    assert answers[15] == 429


def test_the_ceiling_defaults_to_300_a_minute():
    assert settings.RATE_LIMITS["sign_in_address"] == "300/m"
    assert settings.RATE_LIMITS["sign_in"] == "10/m"


@override_settings(RATE_LIMITS={**settings.RATE_LIMITS, "sign_in_failures": "5/m"})
def test_failed_code_exchanges_are_counted_per_address_apart(anon):
    for n in range(5):
        assert_error(anon.post(LOGIN, {"code": f"made-up-{n}"}), 401, "invalid_code")
    # Now even a good code from this address waits: the exchange is not tried.
    good = _code(anon, "honest-user")
    assert_error(anon.post(LOGIN, {"code": good}), 429, "sign_in_failures")
    # Another address is not affected, and successes never count as failures.
    other = anon.post(LOGIN, {"code": good}, REMOTE_ADDR="198.51.100.9")
    assert other.status_code == 200, other.content


@override_settings(RATE_LIMITS={**settings.RATE_LIMITS, "sign_in_failures": "3/m"})
def test_successful_sign_ins_do_not_fill_the_failure_counter(anon):
    for n in range(6):
        assert _login(anon, f"good-{n}").status_code == 200
    assert_error(anon.post(LOGIN, {"code": "bad-1"}), 401)
    assert _login(anon, "good-after").status_code == 200
