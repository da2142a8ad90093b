"""What a production or staging deployment needs, as Django system checks.

`manage.py check --deploy` prints each missing piece with a hint, and nothing when the
configuration is complete; the servers (project/wsgi.py, project/asgi.py, hence gunicorn, daphne
and `manage.py serve`) and the Huey consumer refuse to start on any error here
(`refuse_unusable_deployment`). Development (no MARKETPLACE_ENV) is never checked: its embedded
defaults must keep working with no environment at all.

Staging gets every check except those for real partner credentials, runs on the sandbox, and is
refused on a public host: a sandbox that fakes payments must not be reachable from the internet.
"""

import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("project.checks")

# Hosts a staging deployment may answer for: the loopback, private networks and names that
# never resolve on the public internet.
PRIVATE_SUFFIXES = (".local", ".test", ".internal", ".localhost")
GENERATE_KEY_HINT = (
    "Generate one: python -c 'from django.core.management.utils import get_random_secret_key; "
    "print(get_random_secret_key())'"
)


def _error(id_: int, msg: str, hint: str) -> checks.Error:
    return checks.Error(msg, hint=hint, id=f"marketplace.E{id_:03d}")


def _mode() -> str:
    return "staging" if settings.IS_STAGING else "production"


@checks.register(checks.Tags.security, deploy=True)
def check_deployment(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.IS_DEPLOYED:
        return []
    found = [
        *_core_problems(),
        *_stack_problems(),
        *_payout_key_problems(),
        *_share_card_problems(),
    ]
    if settings.IS_STAGING:
        found.extend(_staging_problems())
    else:
        found.extend(_partner_problems())
    return found


def _core_problems() -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    key = settings.SECRET_KEY
    if key == settings.DEV_SECRET_KEY or len(key) < 50 or len(set(key)) < 5:
        found.append(
            _error(
                1,
                "SECRET_KEY is unset, the development default, or weak (under 50 characters).",
                f"Set SECRET_KEY to this deployment's own random key. {GENERATE_KEY_HINT}",
            )
        )
    if settings.DEBUG:
        found.append(
            _error(2, "DEBUG is on.", "Unset DEBUG (or DEBUG=0): it leaks settings in errors.")
        )
    if not settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS:
        found.append(
            _error(
                3,
                "ALLOWED_HOSTS is empty or '*'.",
                "Set ALLOWED_HOSTS to the host names clients use, comma-separated.",
            )
        )
    if getattr(settings, "NUM_PROXIES", None) is None:
        found.append(
            _error(
                4,
                "NUM_PROXIES is not set.",
                "Set NUM_PROXIES to the number of reverse proxies in front of the servers (1 for "
                "one nginx or load balancer; 0 when clients connect directly): rate limits and "
                "logs take the client address from X-Forwarded-For by it.",
            )
        )
    return found


def _stack_problems() -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if not settings.IS_POSTGRES:
        found.append(
            _error(
                10,
                "DATABASE_URL does not point at PostgreSQL.",
                "Set DATABASE_URL=postgres://user:password@host:5432/marketplace (SQLite is for "
                "the embedded setup only).",
            )
        )
    if not settings.REDIS_URL:
        found.append(
            _error(
                11,
                "REDIS_URL is not set.",
                "Set REDIS_URL=redis://host:6379/0: the channel layer, the task queue, the cache "
                "and rate limits of several processes meet there.",
            )
        )
    return found


def _share_card_problems() -> list[checks.CheckMessage]:
    if Path(settings.SHARE_CARD_FONT).is_file():
        return []
    return [
        checks.Warning(
            f"SHARE_CARD_FONT {settings.SHARE_CARD_FONT} does not exist.",
            hint="Install Debian's fonts-noto-cjk (or point SHARE_CARD_FONT at a CJK font): "
            "share cards draw Chinese titles as boxes without one.",
            id="marketplace.W001",
        )
    ]


def _payout_key_problems() -> list[checks.CheckMessage]:
    from cryptography.fernet import Fernet

    hint = (
        "Set PAYOUT_ENCRYPTION_KEYS to this deployment's own Fernet key(s), comma-separated; "
        "generate one: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())' (docs/wallet.md: rotation)."
    )
    keys = settings.PAYOUT_ENCRYPTION_KEYS
    if not keys or settings.DEV_PAYOUT_ENCRYPTION_KEY in keys:
        return [_error(20, "PAYOUT_ENCRYPTION_KEYS is unset or the development key.", hint)]
    try:
        for key in keys:
            Fernet(key)
    except ValueError:
        return [_error(21, "PAYOUT_ENCRYPTION_KEYS holds a value that is not a Fernet key.", hint)]
    return []


def _partner_problems() -> list[checks.CheckMessage]:
    """Production: every credential a feature needs, so no request finds one missing (a payment
    notification answered 500 when the WeChat Pay keys were absent)."""
    found: list[checks.CheckMessage] = []
    if settings.SANDBOX_ENABLED:
        found.append(
            _error(
                30,
                "The sandbox is enabled in production.",
                "Unset SANDBOX_ENABLED and set the real credentials; for production settings on "
                "the sandbox use MARKETPLACE_ENV=staging.",
            )
        )
        return found  # the sandbox fills in fake credentials: checking them would prove nothing
    groups = {
        "WeChat sign-in": ("WECHAT_APPID", "WECHAT_SECRET"),
        "WeChat Pay": (
            "WECHATPAY_MCHID",
            "WECHATPAY_PRIVATE_KEY",
            "WECHATPAY_CERT_SERIAL_NO",
            "WECHATPAY_APIV3_KEY",
            "WECHATPAY_PUBLIC_KEY",
            "WECHATPAY_PUBLIC_KEY_ID",
        ),
        "Kuaidi100 tracking": ("KUAIDI100_CUSTOMER", "KUAIDI100_KEY"),
    }
    for number, (feature, names) in enumerate(groups.items(), start=31):
        missing = [name for name in names if not getattr(settings, name)]
        if missing:
            found.append(
                _error(
                    number,
                    f"{feature} is not configured: {', '.join(missing)} unset.",
                    f"Set {', '.join(missing)} from the partner's console (docs/operations.md).",
                )
            )
    found.extend(_wechatpay_key_problems())
    if not settings.PUBLIC_BASE_URL.startswith("https://"):
        found.append(
            _error(
                35,
                f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}, not an https:// address.",
                "Set PUBLIC_BASE_URL to the public HTTPS address: WeChat Pay and Kuaidi100 send "
                "their notifications there, and WeChat Pay accepts only HTTPS.",
            )
        )
    return found


def _wechatpay_key_problems() -> list[checks.CheckMessage]:
    from cryptography.hazmat.primitives import serialization

    found: list[checks.CheckMessage] = []
    for name, load in (
        ("WECHATPAY_PRIVATE_KEY", serialization.load_pem_private_key),
        ("WECHATPAY_PUBLIC_KEY", serialization.load_pem_public_key),
    ):
        value = getattr(settings, name)
        if not value:
            continue  # reported as missing above
        pem = value
        if not value.lstrip().startswith("-----BEGIN"):
            path = Path(value)
            if not path.is_file():
                found.append(
                    _error(
                        36,
                        f"{name} is neither PEM text nor a readable file: {value!r}.",
                        f"Set {name} to the PEM text or the path of the .pem file.",
                    )
                )
                continue
            pem = path.read_text()
        try:
            if load is serialization.load_pem_private_key:
                serialization.load_pem_private_key(pem.encode(), password=None)
            else:
                serialization.load_pem_public_key(pem.encode())
        except ValueError:
            found.append(
                _error(
                    37,
                    f"{name} is not a valid PEM key.",
                    f"{name}: the merchant API private key (apiclient_key.pem) or WeChat Pay's "
                    "public key (pub_key.pem), unencrypted.",
                )
            )
    if settings.WECHATPAY_APIV3_KEY and len(settings.WECHATPAY_APIV3_KEY.encode()) != 32:
        found.append(
            _error(
                38,
                "WECHATPAY_APIV3_KEY is not 32 bytes long.",
                "Copy the APIv3 key from the merchant platform (32 characters).",
            )
        )
    return found


def is_private_host(host: str) -> bool:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost" or host.endswith(PRIVATE_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


def _staging_problems() -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if not settings.SANDBOX_ENABLED:
        found.append(
            _error(
                40,
                "Staging runs without the sandbox.",
                "Unset SANDBOX_ENABLED in staging; real partner credentials belong in production.",
            )
        )
    public = [host for host in settings.ALLOWED_HOSTS if host != "*" and not is_private_host(host)]
    if public:
        found.append(
            _error(
                41,
                f"Staging answers for public hosts: {', '.join(public)}.",
                "Staging fakes payments: serve it only on loopback or private addresses or on "
                ".local, .test or .internal names.",
            )
        )
    return found


@checks.register(checks.Tags.database, deploy=True)
def check_first_staff_user(
    app_configs: Sequence[AppConfig] | None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    # Django's convention: only with `--database default` (and from migrate's post_migrate
    # hook) does a check touch the database; a plain `check --deploy` works without one.
    if not databases or "default" not in databases:
        return []
    hint = first_staff_user_hint()
    return [checks.Info(hint, id="marketplace.I001")] if hint else []


def first_staff_user_hint() -> str | None:
    """How to create the first staff user, when a deployment's database has none yet; None when
    it has one, or when the database cannot say (not reachable, not migrated)."""
    if not settings.IS_DEPLOYED:
        return None
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError

    try:
        if get_user_model().objects.filter(is_superuser=True).exists():
            return None
    except DatabaseError:
        return None
    return (
        "No staff user yet: create the first one with `python manage.py createsuperuser` "
        "(same environment), then add staff to groups in the admin (docs/operations.md)."
    )


def refuse_unusable_deployment() -> None:
    """Raise ImproperlyConfigured when a deployment's checks find errors; log its warnings."""
    if not settings.IS_DEPLOYED:
        return
    messages = checks.run_checks(include_deployment_checks=True)
    silenced = set(settings.SILENCED_SYSTEM_CHECKS)
    errors = [m for m in messages if m.is_serious() and m.id not in silenced]
    for message in messages:
        if not message.is_serious() and message.id not in silenced:
            logger.warning("%s", message)
    if errors:
        raise ImproperlyConfigured(
            f"{_mode().capitalize()} mode refuses to start "
            "(`python manage.py check --deploy` lists the same):\n"
            + "\n".join(f"  {error}" for error in errors)
        )
