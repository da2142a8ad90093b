"""Staff sign-in is throttled (issue 20, finding 13): after AXES_FAILURE_LIMIT wrong passwords
an account is locked, even with the right password, and so is the address; each failure and
lockout is logged. Before, 40 wrong passwords and then the right one signed in."""

import logging

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.admin.helpers import staff_in

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "staff-pass-123"

pytestmark = pytest.mark.django_db


def _sign_in(client: Client, username: str, password: str, address: str = "198.51.100.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(response) -> bool:
    # Signed in: sent to the index, or to the one role's queue (marketplace/admin/landing.py).
    location = response.get("Location", "") if response.status_code == 302 else ""
    return location.startswith("/admin/") and "/login/" not in location


def test_forty_wrong_passwords_lock_the_account_even_for_the_right_one(caplog):
    staff_in("support", username="ops-wang")
    caplog.set_level(logging.INFO)
    client = Client()
    for _ in range(40):
        assert not _signed_in(_sign_in(client, "ops-wang", "guess"))
    locked = _sign_in(client, "ops-wang", PASSWORD)
    assert not _signed_in(locked)
    assert locked.status_code == 429
    assert "登录失败次数过多" in locked.content.decode()
    # From another address too: the lock is per account.
    elsewhere = _sign_in(Client(), "ops-wang", PASSWORD, address="203.0.113.50")
    assert not _signed_in(elsewhere) and elsewhere.status_code == 429
    assert "ops-wang" in caplog.text and "198.51.100.7" in caplog.text


def test_one_address_guessing_many_accounts_is_locked(caplog):
    staff_in("support", username="ops-li")
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, f"nobody-{n}", "guess", address="198.51.100.9")
    # The real account, from the guessing address: refused; from a clean one: fine.
    assert _sign_in(client, "ops-li", PASSWORD, address="198.51.100.9").status_code == 429
    assert _signed_in(_sign_in(Client(), "ops-li", PASSWORD, address="203.0.113.60"))


def test_a_few_mistakes_do_not_lock_and_success_resets_the_count():
    staff_in("support", username="ops-zhao")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "ops-zhao", "typo")
    assert _signed_in(_sign_in(client, "ops-zhao", PASSWORD))


@override_settings(NUM_PROXIES=1)
def test_behind_the_proxy_the_lock_follows_the_forwarded_address():
    staff_in("support", username="ops-sun")
    for n in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            LOGIN,
            {"username": f"ghost-{n}", "password": "guess"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"6.6.6.{n}, 198.51.100.77",
        )
    proxied = Client().post(
        LOGIN,
        {"username": "ops-sun", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.77",
    )
    assert proxied.status_code == 429
    other_client = Client().post(
        LOGIN,
        {"username": "ops-sun", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.78",
    )
    assert _signed_in(other_client)
