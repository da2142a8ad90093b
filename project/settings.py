"""Settings: embedded defaults for a laptop, everything production needs from the environment.

Embedded (no environment): SQLite, in-memory channel layer, SQLite-backed Huey,
local media and the WeChat/Kuaidi100 sandbox. Production (MARKETPLACE_ENV=production):
DATABASE_URL (PostgreSQL), REDIS_URL, real credentials; staging (MARKETPLACE_ENV=staging): the
same stack on the sandbox, on a private host. What each needs is checked by project/checks.py
(`manage.py check --deploy`; servers refuse to start on its errors); see docs/operations.md.
"""

import os
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MARKETPLACE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEV_SECRET_KEY = "dev-only-insecure-secret-key-never-use-in-production"  # noqa: S105

MARKETPLACE_ENVIRONMENTS = ("development", "staging", "production")
MARKETPLACE_ENV = os.environ.get("MARKETPLACE_ENV") or "development"
if MARKETPLACE_ENV not in MARKETPLACE_ENVIRONMENTS:
    # A misspelt "production" must not quietly mean development (no checks, the sandbox on).
    raise ImproperlyConfigured(
        f"MARKETPLACE_ENV={MARKETPLACE_ENV!r}: use one of {', '.join(MARKETPLACE_ENVIRONMENTS)}"
    )
IS_PRODUCTION = MARKETPLACE_ENV == "production"
# Staging: production's settings and checks, on the sandbox instead of real partners.
IS_STAGING = MARKETPLACE_ENV == "staging"
IS_DEPLOYED = IS_PRODUCTION or IS_STAGING
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", not IS_DEPLOYED)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if not IS_DEPLOYED else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Base URL the outside world (WeChat Pay, Kuaidi100) uses to call us back.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Only for /api/docs: Swagger UI from django-ninja's own static files, not a CDN.
    "ninja",
    "huey.contrib.djhuey",
    "marketplace",
    "negotiation",
    "realtime",
    "axes",
]

MIDDLEWARE = [
    # First, so it runs after everything else has used the database (ASGI only).
    "project.middleware.ReleaseConnectionsMiddleware",
    # Next: counts and times every request, refused ones too (project/metrics.py).
    "project.metrics.MetricsMiddleware",
    "project.middleware.RequestIdMiddleware",
    # LOG_FORMAT=json: one line per request with its id, user id, route, status and duration.
    "project.jsonlog.AccessLogMiddleware",
    "project.middleware.MethodOverrideMiddleware",
    "project.middleware.BodySizeLimitMiddleware",
    "project.middleware.NulCharacterMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language picks the language of error messages and the admin: Simplified Chinese
    # unless the client asks for English (docs/fixes.md).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.middleware.ApiErrorEnvelopeMiddleware",
    "project.middleware.EnvironmentLabelMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
WSGI_APPLICATION = "project.wsgi.application"
AUTH_USER_MODEL = "marketplace.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
def _server_kind(argv: list[str]) -> str:
    """Which process these settings are loaded into, for sizing its connection pool."""
    program = Path(argv[0]) if argv else Path()
    if "gunicorn" in (program.name, program.parent.name):  # `gunicorn`, `python -m gunicorn`
        return "wsgi"
    if argv[1:2] == ["run_huey"]:
        return "huey"
    return "asgi"  # daphne, `manage.py serve`, and commands (which need one or two)


def _huey_workers(argv: list[str]) -> int:
    for flag in ("--workers", "-w"):
        if flag in argv[:-1] and argv[argv.index(flag) + 1].isdigit():
            return int(argv[argv.index(flag) + 1])
    return env_int("HUEY_WORKERS", 4)


def _pool_size_for(kind: str) -> tuple[int, int]:
    if kind == "wsgi":
        # A sync worker handles one request at a time: one connection, one spare.
        return 1, 2
    if kind == "huey":
        # One per worker thread, plus the consumer's scheduler (periodic sweeps).
        return 1, _huey_workers(sys.argv) + 1
    # Sync views and database_sync_to_async run on asgiref's executor: at most that many
    # threads hold a connection at once (ASGI_THREADS, else Python's default executor size).
    return 2, env_int("ASGI_THREADS", min(32, (os.cpu_count() or 1) + 4))


DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Health checks: the pool tests a connection before lending it, so backends killed under us
    # (failover, idle reaper, PgBouncer restart) cost a reconnect rather than 500s
    # (tests/faults/test_database_drops.py).
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI every request would open a new connection without a pool (STACK_NOTES).
        _pool_min, _pool_max = _pool_size_for(_server_kind(sys.argv))
        DATABASES["default"]["OPTIONS"] = {
            "pool": {
                "min_size": env_int("DB_POOL_MIN", _pool_min),
                "max_size": env_int("DB_POOL_MAX", _pool_max),
                # A request still waiting for a connection after a few seconds has failed for its
                # user already: answer 503 (project/api.py) instead of queueing it for 30 s.
                "timeout": env_float("DB_POOL_TIMEOUT", 5.0),
            },
            # JIT compiling costs ~15 ms whenever the planner's estimate passes jit_above_cost,
            # as for the catalog search's rarely-run second step (docs/catalog.md "Search"): a
            # price no short OLTP query recovers. Generic plans: the only prepared statements
            # are the catalog page's (marketplace/catalog_pages.py; Django binds on the client
            # and prepares nothing), written so that one plan serves every value, which saves
            # re-planning them (~3 ms a search) on every execution. (Behind PgBouncer, set
            # DB_OPTIONS="" and set both in the server's configuration.)
            "options": os.environ.get(
                "DB_OPTIONS", "-c jit=off -c plan_cache_mode=force_generic_plan"
            ),
            # Who holds a connection, in pg_stat_activity: "marketplace daphne", "... gunicorn".
            "application_name": os.environ.get(
                "DB_APPLICATION_NAME", f"marketplace {Path(sys.argv[0]).name}"[:63]
            ),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "marketplace.sqlite3"),
            "OPTIONS": {
                # One writer at a time: take the write lock when the transaction begins, so a
                # read-then-write transaction waits instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    }
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Huey, cache, WeChat access token -----------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # After Redis restarts, the channel layer's pooled connections are dead sockets that
    # redis-py 8's asyncio pool lends out and never retries: the first handshakes per server
    # process answered 500 (tests/realtime/test_redis_restart.py). Ping a connection idle for a
    # while before use, and reconnect once and retry a command whose connection was closed
    # (the sync pool of the cache already recovers by itself).
    LAYER_RESILIENCE = {
        "health_check_interval": 10,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [RedisConnectionError],
    }

    # channels-redis 4.3 on redis-py 8: the defaults (socket_timeout=5, max_connections=100)
    # collide with the layer's 5 s blocking reads and kill consumers (STACK_NOTES).
    CHANNEL_LAYERS = {
        "default": {
            # The stock layer: Python 3.12's wait_for no longer loses cancellations, which is
            # what a subclass worked around on 3.11 (tests/realtime/test_layer_cancellation.py).
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "max_connections": 5000,
                        **LAYER_RESILIENCE,
                    },
                ],
                "prefix": os.environ.get("CHANNELS_PREFIX", "asgi"),
                # Frames queued for one server process (all its sockets share one Redis list in
                # channels-redis 4), so size it with the sockets a process holds: ~1 frame each
                # in flight. Past it frames are dropped, never events: the store keeps them and
                # the socket fills the gap on its next frame or resume (docs/realtime.md).
                "capacity": env_int("CHANNELS_CAPACITY", 5000),
                # Undelivered frames older than this are useless to a live socket.
                "expiry": env_int("CHANNELS_EXPIRY", 30),
                "group_expiry": env_int("CHANNELS_GROUP_EXPIRY", 86400),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "project.cache.FailOpenRedisCache",  # a Redis outage is not a 500
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "mkt"),
        }
    }
    HUEY: dict[str, Any] = {
        "huey_class": "project.huey.OutageTolerantRedisHuey",  # enqueue never 500s a commit
        "name": os.environ.get("HUEY_NAME", "marketplace"),
        "url": REDIS_URL,
        "results": False,
        "immediate": False,
        # Workers wait on BRPOP instead of polling with back-off, so a queued task (a refund,
        # a sandbox notification) starts within milliseconds rather than up to 10 s later.
        "blocking": True,
        "consumer": {"workers": env_int("HUEY_WORKERS", 4), "worker_type": "thread"},
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": "marketplace",
        "filename": str(VAR_DIR / "huey.sqlite3"),
        "results": False,
        "immediate": False,
        "consumer": {"workers": 2, "worker_type": "thread"},
    }

# --- Auth, tokens, limits ---------------------------------------------------------------------
API_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 30)
MAX_ADDRESSES_PER_USER = 20
# How long a request holds its Idempotency-Key before a retry may take it for dead: longer than
# any request runs (the slowest partner call times out after WECHATPAY_TIMEOUT, 10 s).
IDEMPOTENCY_LEASE_SECONDS = env_int("IDEMPOTENCY_LEASE_SECONDS", 60)
# Plain JSON bodies; uploads have their own limits per endpoint.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_JSON_BODY_BYTES", 256 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Every uploaded file streams to a temporary file in 64 KiB chunks, whatever length the request
# declares: the in-memory handler trusts Content-Length, and a body without one (chunked, under
# ASGI) counts as small.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 110 * 1024 * 1024)
# How many proxies in front of us append to X-Forwarded-For; unset or 0 means none, so the
# header is the client's own text and the socket address is used (project/client_address.py).
# None (unset) means no proxy, as 0 does; deployments must say which (project/checks.py).
NUM_PROXIES: int | None = env_int("NUM_PROXIES", 0) if os.environ.get("NUM_PROXIES") else None
NINJA_NUM_PROXIES = NUM_PROXIES
RATE_LIMITS = {
    # Sign-in (docs/fixes.md): per WeChat openid, as code2session returns it, since most mobile
    # users share carrier-grade NAT addresses; a far higher per-address ceiling against floods;
    # and failed code exchanges per address, counted apart (a flood of made-up codes).
    "sign_in": os.environ.get("RATE_SIGN_IN", "10/m"),
    "sign_in_address": os.environ.get("RATE_SIGN_IN_ADDRESS", "300/m"),
    "sign_in_failures": os.environ.get("RATE_SIGN_IN_FAILURES", "30/m"),
    "phone": os.environ.get("RATE_PHONE", "10/m"),
    "default_user": os.environ.get("RATE_USER", "600/m"),
    "withdrawal": os.environ.get("RATE_WITHDRAWAL", "10/h"),
    # Per user, counted atomically (project/ratelimit.py), before the body is read.
    "image_upload": os.environ.get("RATE_IMAGE_UPLOAD", "60/m"),
    "video_upload": os.environ.get("RATE_VIDEO_UPLOAD", "20/h"),
    # Building an export reads every row of the user's: a few a day is plenty.
    "data_export": os.environ.get("RATE_DATA_EXPORT", "10/d"),
    # Share cards are made once per listing version; the limit stops a crawler making them all.
    "share": os.environ.get("RATE_SHARE", "120/m"),
}

# --- Staff sign-in lockout (django-axes; the admin is the only password sign-in) ---------------
# Attempts are rows in the database, so every server process counts together. Locked out after
# AXES_FAILURE_LIMIT failures either for the account (from any address) or for the address
# (whatever account it tries), for an hour; the address is the one rate limits use.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_SIGN_IN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("ADMIN_SIGN_IN_LOCKOUT_HOURS", 1)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "project.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
AXES_COOLOFF_MESSAGE = "登录失败次数过多，已暂时锁定，请一小时后再试。"
AXES_PERMALOCK_MESSAGE = AXES_COOLOFF_MESSAGE
# The log says which staff account was tried from which address (the password never is).
AXES_SENSITIVE_PARAMETERS: list[str] = []

# --- Wallet: payout account numbers are encrypted at rest (docs/wallet.md) ---------------------
# Fernet keys, comma-separated; the first encrypts, every one decrypts (prepend a new key to
# rotate, then run `manage.py rotate_payout_keys`). The default is for the embedded stack only:
# production and staging refuse to start without their own keys.
DEV_PAYOUT_ENCRYPTION_KEY = "eyTDa4wsx4pFZOGOPC0fCuktumzbQgeDR2X0Wttcb9c="
PAYOUT_ENCRYPTION_KEYS = env_list(
    "PAYOUT_ENCRYPTION_KEYS", [] if IS_DEPLOYED else [DEV_PAYOUT_ENCRYPTION_KEY]
)

# --- External services ------------------------------------------------------------------------
WECHAT_APPID = os.environ.get("WECHAT_APPID", "")
WECHAT_SECRET = os.environ.get("WECHAT_SECRET", "")
# Staging always runs on the sandbox (project/checks.py refuses it otherwise).
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", IS_STAGING or not (WECHAT_APPID and WECHAT_SECRET))
if SANDBOX_ENABLED:
    # Installed (tables, /sandbox/ URLs, periodic tasks) only here: production never has it.
    INSTALLED_APPS.append("sandbox")
    WECHAT_APPID = WECHAT_APPID or "wxsandbox0000000001"
    WECHAT_SECRET = WECHAT_SECRET or "sandbox-secret"  # noqa: S105
WECHAT_HTTP_TIMEOUT = env_int("WECHAT_HTTP_TIMEOUT", 5)

# WeChat Pay API v3 in public-key mode (docs/sandbox.md). Keys are PEM text or a path to a PEM
# file. In the sandbox these are ignored: the keys are generated once and kept in the database
# (sandbox.SandboxKeys) so the server and the worker share them.
WECHATPAY_MCHID = os.environ.get("WECHATPAY_MCHID", "")
WECHATPAY_PRIVATE_KEY = os.environ.get("WECHATPAY_PRIVATE_KEY", "")
WECHATPAY_CERT_SERIAL_NO = os.environ.get("WECHATPAY_CERT_SERIAL_NO", "")
WECHATPAY_APIV3_KEY = os.environ.get("WECHATPAY_APIV3_KEY", "")
WECHATPAY_PUBLIC_KEY = os.environ.get("WECHATPAY_PUBLIC_KEY", "")
WECHATPAY_PUBLIC_KEY_ID = os.environ.get("WECHATPAY_PUBLIC_KEY_ID", "")
WECHATPAY_TIMEOUT = env_int("WECHATPAY_TIMEOUT", 10)
WECHATPAY_NOTIFY_URL = PUBLIC_BASE_URL + "/api/payments/wechat/notify"
WECHATPAY_REFUND_NOTIFY_URL = PUBLIC_BASE_URL + "/api/payments/wechat/refund-notify"
# Merchant transfer (商家转账) to the user's WeChat balance (docs/payout.md). The scene is the one
# the merchant applied for in the WeChat Pay console; its report infos and the text the user sees
# must be the ones WeChat lists for that scene (1005 佣金报酬: 岗位类型, 报酬说明).
WECHATPAY_TRANSFER_NOTIFY_URL = PUBLIC_BASE_URL + "/api/payments/wechat/transfer-notify"
WECHATPAY_TRANSFER_SCENE_ID = os.environ.get("WECHATPAY_TRANSFER_SCENE_ID", "1005")
WECHATPAY_TRANSFER_RECV_PERCEPTION = os.environ.get("WECHATPAY_TRANSFER_RECV_PERCEPTION", "劳务报酬")
WECHATPAY_TRANSFER_REPORT_INFOS = [
    {"info_type": "岗位类型", "info_content": os.environ.get("WECHATPAY_TRANSFER_POST", "闲置卖家")},
    {
        "info_type": "报酬说明",
        "info_content": os.environ.get("WECHATPAY_TRANSFER_REWARD", "闲置交易货款提现"),
    },
]
# WeChat closes a transfer the user has not confirmed after this window (24 h at the time of
# writing; check WeChat's current rule); past it we cancel and settle by query.
WECHATPAY_TRANSFER_CONFIRM_WINDOW_SECONDS = env_int(
    "WECHATPAY_TRANSFER_CONFIRM_WINDOW_SECONDS", 24 * 3600
)
# From this amount (2,000 yuan) WeChat requires the payee's real name (user_name).
WECHATPAY_TRANSFER_REAL_NAME_FROM_FEN = 200_000
if SANDBOX_ENABLED:
    WECHATPAY_MCHID = WECHATPAY_MCHID or "1900000109"
# WeChat's notification retry schedule is multiplied by this in the sandbox (1.0 = real pace).
SANDBOX_NOTIFY_SCHEDULE_SCALE = float(os.environ.get("SANDBOX_NOTIFY_SCHEDULE_SCALE", "0.01"))
# Seconds a sandbox refund stays PROCESSING before it settles and notifies.
SANDBOX_REFUND_SETTLE_SECONDS = float(os.environ.get("SANDBOX_REFUND_SETTLE_SECONDS", "2"))
# Sandbox merchant transfers: the outcome of a confirmation ("SUCCESS" or "FAIL") and how long
# an unconfirmed one waits before it is closed (CANCELLED).
SANDBOX_TRANSFER_OUTCOME = os.environ.get("SANDBOX_TRANSFER_OUTCOME", "SUCCESS")
SANDBOX_TRANSFER_CONFIRM_SECONDS = float(
    os.environ.get("SANDBOX_TRANSFER_CONFIRM_SECONDS", str(24 * 3600))
)
# Sandbox bills: out_trade_no / out_refund_no / out_bill_no values whose line the served bill
# drops, or whose amount it alters by +1 fen (tests of reconciliation).
SANDBOX_BILL_DROP = env_list("SANDBOX_BILL_DROP", [])
SANDBOX_BILL_ALTER = env_list("SANDBOX_BILL_ALTER", [])
# How the sandbox reaches notify URLs: "http" (a real POST) or "django" (in-process test client).
SANDBOX_CALLBACK_TRANSPORT = os.environ.get("SANDBOX_CALLBACK_TRANSPORT", "http")

# Kuaidi100 (tracking query, subscription push, carrier detection): the company id ("customer")
# and the authorisation key from the Kuaidi100 console. The sandbox checks signs against these.
KUAIDI100_CUSTOMER = os.environ.get("KUAIDI100_CUSTOMER", "")
KUAIDI100_KEY = os.environ.get("KUAIDI100_KEY", "")
if SANDBOX_ENABLED:
    KUAIDI100_CUSTOMER = KUAIDI100_CUSTOMER or "SANDBOXCUSTOMER0000000000000001"
    KUAIDI100_KEY = KUAIDI100_KEY or "sandbox-kuaidi100-key"
KUAIDI100_TIMEOUT = env_int("KUAIDI100_TIMEOUT", 5)

# --- Realtime (docs/realtime.md) ---------------------------------------------------------------
# Browsers send their page's Origin; mini-programs send none or https://servicewechat.com.
REALTIME_ALLOWED_ORIGINS = env_list(
    "REALTIME_ALLOWED_ORIGINS", ["https://servicewechat.com", "http://127.0.0.1:8000"]
)
REALTIME_EVENT_RETENTION_DAYS = env_int("REALTIME_EVENT_RETENTION_DAYS", 30)
# Read notifications older than this are pruned nightly (realtime.tasks.prune_notifications).
NOTIFICATION_READ_RETENTION_DAYS = env_int("NOTIFICATION_READ_RETENTION_DAYS", 90)
REALTIME_IDLE_TIMEOUT_SECONDS = env_int("REALTIME_IDLE_TIMEOUT_SECONDS", 120)
REALTIME_PRESENCE_TTL_SECONDS = env_int("REALTIME_PRESENCE_TTL_SECONDS", 90)
REALTIME_MAX_FRAME_BYTES = env_int("REALTIME_MAX_FRAME_BYTES", 16 * 1024)
# Conversations (docs/conversations.md).
MESSAGE_RATE_PER_MINUTE = env_int("MESSAGE_RATE_PER_MINUTE", 30)
NEW_CONVERSATIONS_PER_DAY = env_int("NEW_CONVERSATIONS_PER_DAY", 50)
REALTIME_RATE_PER_SECOND = env_int("REALTIME_RATE_PER_SECOND", 10)
REALTIME_RATE_BURST = env_int("REALTIME_RATE_BURST", 30)
# Socket objects are frozen out of the garbage collector's full passes, which stalled a process
# holding thousands of sockets for ~1 s; one full pass runs this often (realtime/heap.py).
# 0 leaves Python's own collection policy alone.
REALTIME_FULL_COLLECT_SECONDS = env_int("REALTIME_FULL_COLLECT_SECONDS", 600)
# Subscribe-message templates for the offline fallback (empty disables that event's message).
WECHAT_TEMPLATE_VIDEO_READY = os.environ.get("WECHAT_TEMPLATE_VIDEO_READY", "")
WECHAT_TEMPLATE_SHIPPING_UPDATE = os.environ.get("WECHAT_TEMPLATE_SHIPPING_UPDATE", "")
WECHAT_TEMPLATE_OFFER_ANSWERED = os.environ.get("WECHAT_TEMPLATE_OFFER_ANSWERED", "")
WECHAT_TEMPLATE_NEW_MESSAGE = os.environ.get("WECHAT_TEMPLATE_NEW_MESSAGE", "")
# The Token set for the message-push URL in the mini-program console (mediaCheckAsync verdicts).
WECHAT_PUSH_TOKEN = os.environ.get("WECHAT_PUSH_TOKEN", "")
if SANDBOX_ENABLED:
    WECHAT_TEMPLATE_VIDEO_READY = WECHAT_TEMPLATE_VIDEO_READY or "sandbox-tpl-video-ready"
    WECHAT_TEMPLATE_SHIPPING_UPDATE = WECHAT_TEMPLATE_SHIPPING_UPDATE or "sandbox-tpl-shipping"
    WECHAT_TEMPLATE_OFFER_ANSWERED = WECHAT_TEMPLATE_OFFER_ANSWERED or "sandbox-tpl-offer"
    WECHAT_TEMPLATE_NEW_MESSAGE = WECHAT_TEMPLATE_NEW_MESSAGE or "sandbox-tpl-message"
    WECHAT_PUSH_TOKEN = WECHAT_PUSH_TOKEN or "sandbox-push-token"

# --- Privacy and sharing (docs/privacy.md) -----------------------------------------------------
# A closed account's personal data is erased this many days after it was closed; signing in
# with `restore_account` before then reopens it.
ACCOUNT_DELETION_COOLING_OFF_DAYS = env_int("ACCOUNT_DELETION_COOLING_OFF_DAYS", 15)
# A personal-data export stays downloadable this long; its signed URL lives as long.
DATA_EXPORT_TTL_SECONDS = env_int("DATA_EXPORT_TTL_SECONDS", 24 * 3600)
# Retention periods in days, enforced by marketplace.tasks.retention_sweep (docs/privacy.md).
RETENTION_DAYS = {
    # Raw WeChat Pay payment and refund notifications, kept for audit and replay checks.
    "payment_notifications": env_int("RETENTION_PAYMENT_NOTIFICATIONS_DAYS", 180),
    # Idempotency-Key answers (bodies may hold addresses): replays only matter for a day.
    "idempotency_records": env_int("RETENTION_IDEMPOTENCY_RECORDS_DAYS", 7),
    # Revoked or expired API tokens.
    "api_tokens": env_int("RETENTION_API_TOKENS_DAYS", 30),
    # Staff sign-in logs (address, user agent) of django-axes.
    "staff_sign_in_logs": env_int("RETENTION_STAFF_SIGN_IN_LOGS_DAYS", 90),
    # Personal-data exports, after they expire.
    "data_exports": env_int("RETENTION_DATA_EXPORTS_DAYS", 1),
}
# Which mini-program build a share code opens: "release", "trial" or "develop".
WECHAT_MINIPROGRAM_ENV = os.environ.get("WECHAT_MINIPROGRAM_ENV", "release")
# The page a shared listing opens (no leading slash, no query: the id travels as `scene`).
SHARE_LISTING_PAGE = os.environ.get("SHARE_LISTING_PAGE", "pages/listings/detail")
SHARE_HOME_PAGE = os.environ.get("SHARE_HOME_PAGE", "pages/index/index")
# A CJK font for share cards (Debian's fonts-noto-cjk); the deploy checks warn when missing.
SHARE_CARD_FONT = os.environ.get(
    "SHARE_CARD_FONT", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
)

# Hosts an avatar_url given as text may point at (HTTPS only): WeChat's own avatar CDN. Our own
# uploads (POST /api/me/avatar, MEDIA_BASE_URL) are always accepted.
AVATAR_URL_HOSTS = env_list("AVATAR_URL_HOSTS", ["thirdwx.qlogo.cn", "wx.qlogo.cn"])

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
MEDIA_URL = os.environ.get("MEDIA_URL", "/media/")
# The origin every media URL the API and the socket return starts with (marketplace/media.py):
# a CDN in front of MEDIA_URL, or by default this server itself.
MEDIA_BASE_URL = os.environ.get("MEDIA_BASE_URL", PUBLIC_BASE_URL).rstrip("/")
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# "private" holds what only some readers may see (order videos, chat images, personal-data
# exports) outside the public media prefix: its own directory here (never served as /media/),
# its own key prefix on S3. Readers get short-lived URLs from marketplace.media.private_url (docs/fixes.md).
PRIVATE_MEDIA_ROOT = Path(os.environ.get("PRIVATE_MEDIA_ROOT", VAR_DIR / "private-media"))
# How long a private URL (a signed link to our view, or an S3 presigned URL) stays valid.
PRIVATE_MEDIA_TTL_SECONDS = env_int("PRIVATE_MEDIA_TTL_SECONDS", 600)
# Behind nginx the per-reader view (marketplace/api/media.py) hands the file over with
# X-Accel-Redirect to PRIVATE_MEDIA_ACCEL_REDIRECT (below).
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": "/private-media-not-served/"},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# nginx's internal location aliasing PRIVATE_MEDIA_ROOT ("/protected-media/",
# deploy/nginx/marketplace.conf.in); empty: the app streams the file itself.
PRIVATE_MEDIA_ACCEL_REDIRECT = os.environ.get("PRIVATE_MEDIA_ACCEL_REDIRECT", "")
if os.environ.get("AWS_STORAGE_BUCKET_NAME"):
    # S3-compatible object storage. boto3 takes AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    # AWS_DEFAULT_REGION from the environment (tests/project/test_s3_storage.py).
    _s3_options = {
        "bucket_name": os.environ["AWS_STORAGE_BUCKET_NAME"],
        "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
        "file_overwrite": False,
        # Objects stay private (the bucket's own policy); URLs are signed for this long.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 3600),
    }
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        # A CDN domain in front of the public media; its URLs are not signed.
        "OPTIONS": {**_s3_options, "custom_domain": os.environ.get("AWS_S3_CUSTOM_DOMAIN") or None},
    }
    # No custom domain here: django-storages signs only bucket URLs, and a CDN URL for a video
    # would be readable by anyone who saw it, for ever.
    STORAGES["private"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            **_s3_options,
            "location": os.environ.get("AWS_PRIVATE_LOCATION", "private"),
            "querystring_expire": PRIVATE_MEDIA_TTL_SECONDS,
        },
    }

LANGUAGE_CODE = "zh-hans"
# What users and staff read: Simplified Chinese by default, English on Accept-Language: en.
# The catalogue is locale/zh_Hans/LC_MESSAGES/django.po, compiled by `make messages`.
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Metrics and error reporting (docs/operations.md, "Metrics", "Error reporting") --------------
# /metrics answers `Authorization: Bearer <METRICS_TOKEN>`, or a client address listed here.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
# Errors go to Sentry when a DSN is set, scrubbed of tokens and personal data first
# (project/error_reporting.py).
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    from project import error_reporting

    error_reporting.init(
        dsn=SENTRY_DSN,
        environment=os.environ.get("SENTRY_ENVIRONMENT") or MARKETPLACE_ENV,
        release=os.environ.get("SENTRY_RELEASE"),
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
    )

# --- Logging: one line per record, with the request id ------------------------------------------
# "line" (readable) or "json" (one JSON object per line, for log shippers; project/jsonlog.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "line")
if LOG_FORMAT not in {"line", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use line or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "project.middleware.RequestIdLogFilter"}},
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {"()": "project.jsonlog.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # A handler of its own, so run_huey does not add its plain one: each line once, in
        # LOG_FORMAT (with a handler already set, Huey leaves the logger alone).
        "huey": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- HTTPS behind the proxy (Django's deploy checks warn about each one left off) ---------------
def _proxy_ssl_header(value: str | None) -> tuple[str, str] | None:
    """`X-Forwarded-Proto,https` (or Django's `HTTP_X_FORWARDED_PROTO,https`); empty: none."""
    if value is None:
        return ("HTTP_X_FORWARDED_PROTO", "https") if IS_DEPLOYED else None
    if not value.strip():
        return None
    header, _, expected = (part.strip() for part in value.partition(","))
    meta = header.upper().replace("-", "_")
    return (meta if meta.startswith("HTTP_") else f"HTTP_{meta}", expected or "https")


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(os.environ.get("SECURE_PROXY_SSL_HEADER"))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", IS_DEPLOYED)
# The load balancer probes over plain HTTP inside the network.
# Prometheus may scrape a server process directly (its token or allow-list still applies).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if IS_DEPLOYED else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", IS_DEPLOYED)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", IS_DEPLOYED)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", IS_DEPLOYED)
# Joining the browsers' preload list is the domain owner's decision (hstspreload.org), and hard
# to undo: opt in with SECURE_HSTS_PRELOAD=1 rather than be nagged into it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
