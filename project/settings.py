"""Settings: embedded defaults for a laptop, everything production needs from the environment.

Embedded (no environment): SQLite, in-memory channel layer, SQLite-backed Huey,
local media and the WeChat/Kuaidi100 sandbox. Production (MARKETPLACE_ENV=production):
DATABASE_URL (PostgreSQL), REDIS_URL, real credentials; see docs/operations.md.
"""

import os
from pathlib import Path

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


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEV_SECRET_KEY = "dev-only-insecure-secret-key-never-use-in-production"  # noqa: S105

IS_PRODUCTION = os.environ.get("MARKETPLACE_ENV", "development") == "production"
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", not IS_PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if not IS_PRODUCTION else [])
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
    "huey.contrib.djhuey",
    "marketplace",
    "marketplace.gateways.sandbox",
    "negotiation",
    "realtime",
    "axes",
]

MIDDLEWARE = [
    "project.middleware.RequestIdMiddleware",
    "project.middleware.BodySizeLimitMiddleware",
    "project.middleware.NulCharacterMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.middleware.ApiErrorEnvelopeMiddleware",
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
        DATABASES["default"]["OPTIONS"] = {
            "pool": {
                "min_size": env_int("DB_POOL_MIN", 2),
                "max_size": env_int("DB_POOL_MAX", 20),
                "timeout": env_int("DB_POOL_TIMEOUT", 30),
            },
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "marketplace.sqlite3",
            "OPTIONS": {
                # One writer at a time: take the write lock when the transaction begins, so a
                # read-then-write transaction waits instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
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
            # channels-redis, made to honour cancellation on Python 3.11 (realtime/layers.py).
            "BACKEND": "realtime.layers.RedisChannelLayer",
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
    HUEY = {
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
# Plain JSON bodies; uploads have their own limits per endpoint.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_JSON_BODY_BYTES", 256 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 110 * 1024 * 1024)
# How many proxies in front of us append to X-Forwarded-For; unset or 0 means none, so the
# header is the client's own text and the socket address is used (project/client_address.py).
NUM_PROXIES = env_int("NUM_PROXIES", 0)
NINJA_NUM_PROXIES = NUM_PROXIES
RATE_LIMITS = {
    "sign_in": os.environ.get("RATE_SIGN_IN", "10/m"),
    "phone": os.environ.get("RATE_PHONE", "10/m"),
    "default_user": os.environ.get("RATE_USER", "600/m"),
    "withdrawal": os.environ.get("RATE_WITHDRAWAL", "10/h"),
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
# production refuses to start without its own keys.
DEV_PAYOUT_ENCRYPTION_KEY = "eyTDa4wsx4pFZOGOPC0fCuktumzbQgeDR2X0Wttcb9c="
PAYOUT_ENCRYPTION_KEYS = env_list(
    "PAYOUT_ENCRYPTION_KEYS", [] if IS_PRODUCTION else [DEV_PAYOUT_ENCRYPTION_KEY]
)

# --- External services ------------------------------------------------------------------------
WECHAT_APPID = os.environ.get("WECHAT_APPID", "")
WECHAT_SECRET = os.environ.get("WECHAT_SECRET", "")
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", not (WECHAT_APPID and WECHAT_SECRET))
if SANDBOX_ENABLED:
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
if SANDBOX_ENABLED:
    WECHATPAY_MCHID = WECHATPAY_MCHID or "1900000109"
# WeChat's notification retry schedule is multiplied by this in the sandbox (1.0 = real pace).
SANDBOX_NOTIFY_SCHEDULE_SCALE = float(os.environ.get("SANDBOX_NOTIFY_SCHEDULE_SCALE", "0.01"))
# Seconds a sandbox refund stays PROCESSING before it settles and notifies.
SANDBOX_REFUND_SETTLE_SECONDS = float(os.environ.get("SANDBOX_REFUND_SETTLE_SECONDS", "2"))
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
REALTIME_IDLE_TIMEOUT_SECONDS = env_int("REALTIME_IDLE_TIMEOUT_SECONDS", 120)
REALTIME_PRESENCE_TTL_SECONDS = env_int("REALTIME_PRESENCE_TTL_SECONDS", 90)
REALTIME_MAX_FRAME_BYTES = env_int("REALTIME_MAX_FRAME_BYTES", 16 * 1024)
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
if SANDBOX_ENABLED:
    WECHAT_TEMPLATE_VIDEO_READY = WECHAT_TEMPLATE_VIDEO_READY or "sandbox-tpl-video-ready"
    WECHAT_TEMPLATE_SHIPPING_UPDATE = WECHAT_TEMPLATE_SHIPPING_UPDATE or "sandbox-tpl-shipping"
    WECHAT_TEMPLATE_OFFER_ANSWERED = WECHAT_TEMPLATE_OFFER_ANSWERED or "sandbox-tpl-offer"

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = os.environ.get("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if os.environ.get("AWS_STORAGE_BUCKET_NAME"):
    # S3-compatible object storage; django-storages reads AWS_* from the environment.
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["AWS_STORAGE_BUCKET_NAME"],
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "custom_domain": os.environ.get("AWS_S3_CUSTOM_DOMAIN") or None,
            "file_overwrite": False,
        },
    }

LANGUAGE_CODE = "zh-hans"
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Logging: one line per record, with the request id ------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "project.middleware.RequestIdLogFilter"}},
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "huey": {"level": "INFO"},
    },
}

if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True


def _payout_key_problems() -> list[str]:
    from cryptography.fernet import Fernet

    if not PAYOUT_ENCRYPTION_KEYS or DEV_PAYOUT_ENCRYPTION_KEY in PAYOUT_ENCRYPTION_KEYS:
        return ["PAYOUT_ENCRYPTION_KEYS must be set to this deployment's own Fernet key(s)"]
    try:
        for key in PAYOUT_ENCRYPTION_KEYS:
            Fernet(key)
    except ValueError:
        return ["PAYOUT_ENCRYPTION_KEYS holds a value that is not a Fernet key"]
    return []


def check_production_settings() -> None:
    """Refuse to boot production with development conveniences left on."""
    if not IS_PRODUCTION:
        return
    problems = []
    if SANDBOX_ENABLED:
        problems.append("the sandbox is enabled (set WECHAT_APPID/WECHAT_SECRET and credentials)")
    if DEBUG:
        problems.append("DEBUG is on")
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        problems.append("SECRET_KEY is the development default or too short")
    if not IS_POSTGRES:
        problems.append("DATABASE_URL must point at PostgreSQL")
    if not REDIS_URL:
        problems.append("REDIS_URL must be set")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must be set")
    problems.extend(_payout_key_problems())
    if problems:
        raise ImproperlyConfigured("Production mode refuses to start: " + "; ".join(problems))


check_production_settings()
