"""Settings, read from the environment through django-environ.

Working defaults exist for the embedded run (ALPHA_ENV=development) and the test
suite (ALPHA_ENV=testing). In production every variable in PRODUCTION_REQUIRED must
be set: start-up fails with a message naming the first one missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from alpha_platform.common import keys
from alpha_platform.common.errors import CredentialsError

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("ALPHA_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

ALPHA_ENV = env.str("ALPHA_ENV", default="development")
if ALPHA_ENV not in {"development", "testing", "production"}:
    raise ImproperlyConfigured(
        f"ALPHA_ENV must be one of development, testing, production (got {ALPHA_ENV!r})"
    )
PRODUCTION = ALPHA_ENV == "production"

PRODUCTION_REQUIRED = (
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "CREDENTIALS_ENCRYPTION_KEYS",
)
if PRODUCTION:
    for _name in PRODUCTION_REQUIRED:
        if not env.str(_name, default="").strip():
            raise ImproperlyConfigured(
                f"{_name} is required when ALPHA_ENV=production but is not set"
            )

DEBUG = env.bool("DEBUG", default=not PRODUCTION and ALPHA_ENV != "testing")
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="django-insecure-development-only-key-never-use-in-production-0123456789",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if not PRODUCTION:
    VAR_DIR.mkdir(parents=True, exist_ok=True)

# Credentials at rest: comma-separated Fernet keys, newest first. In development a key
# is generated once into var/ and reused; in testing the suite supplies its own.
try:
    CREDENTIALS_ENCRYPTION_KEYS = keys.load_encryption_keys(
        env.str("CREDENTIALS_ENCRYPTION_KEYS", default=""),
        generate_into=None if PRODUCTION else VAR_DIR / "credentials.key",
    )
except CredentialsError as exc:
    raise ImproperlyConfigured(exc.message) from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our own static files
    "django_filters",  # the API lists' query parameters (alpha_platform/web/api/filters.py)
    "django_celery_beat",
    "channels",
    "axes",  # the sign-in throttle (alpha_platform/web/login_throttle.py)
    "alpha_platform.web",  # the web layer (label "alpha_platform")
    "exchanges",
    "risk",
    "trading",
    "agents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "alpha_platform.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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
WSGI_APPLICATION = "alpha_platform.wsgi.application"
ASGI_APPLICATION = "alpha_platform.asgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks, and take the
    # write lock at BEGIN so select_for_update-style critical sections serialise.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Tests get a file, not shared-cache memory, so concurrent tests lock as production does.
    # One file per test process, so concurrent runs never share (or delete) each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")}
    # Kept between requests only where the thread lives on (the HTTP server's gthread
    # workers set DB_CONN_MAX_AGE: alpha_platform/gunicorn_conf.py); closed after each
    # request elsewhere (the ASGI server makes a thread per request).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
elif env.bool("DB_POOL", default=False):
    # The websocket server's workers (alpha_platform/gunicorn_ws_conf.py turns this on): under ASGI
    # every request runs its sync code in a thread of its own, so per-thread persistent
    # connections (CONN_MAX_AGE) are never reused and pile up until the server refuses
    # more. Each worker keeps a small psycopg pool instead, shared by its threads, each
    # connection checked before it is handed out. (Celery's threads keep one connection
    # each for a whole task: they stay on persistent connections.)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": env.int("DB_POOL_MAX_SIZE", default=8), "timeout": 10,
    }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # Django passes the pool its check
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6390/0")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        "KEY_PREFIX": "alpha",
    }
}

REALTIME_ENABLED = env.bool("REALTIME_ENABLED", default=True)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # channels_redis waits for messages with 5 s blocking reads; redis-py 8's default
        # 5 s socket timeout would kill every consumer idle for 5 s.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
    }
}

# Celery: Redis broker, JSON only, beat schedule kept in the database.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if ALPHA_ENV == "testing":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [d for d in [BASE_DIR / "static"] if d.exists()]
# chart.js, installed by `make install` (npm ci) from package-lock.json, never committed.
STATICFILES_DIRS += [("vendor/chart.js", d) for d in [BASE_DIR / "node_modules" / "chart.js" / "dist"] if d.exists()]
# The ASGI servers serve no static files by themselves: the ASGI app does it in development, or when
# SERVE_STATIC is set (a single-container deployment; behind a proxy, let it serve them).
SERVE_STATIC = env.bool("SERVE_STATIC", default=DEBUG)

LOGIN_URL = "portal:login"

# The REST API (/api/). Tokens first (`Authorization: Token <key>`), then the portal's
# session. One error style (alpha_platform.web.api.common.exception_handler). Throttle
# rates come from the environment so the bench and the fuzz run can raise them.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "alpha_platform.web.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "alpha_platform.web.api.common.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["alpha_platform.web.api.filters.ListFilterBackend"],
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "alpha_platform.web.api.common.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["alpha_platform.web.api.common.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_USER", default="600/min"),
        "auth": env.str("API_THROTTLE_AUTH", default="10/min"),
        "orders": env.str("API_THROTTLE_ORDERS", default="60/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "AlphaTransformer API",
    "DESCRIPTION": (
        "Everything a person can do in the portal: exchange accounts, balances and positions, orders "
        "through the risk gate, the risk profile, agents and their decisions, and the kill switch.\n\n"
        "Authenticate with `Authorization: Token <key>` (get a key from `POST /api/auth/token/`). "
        "Every object is scoped to you: another user's object is a 404.\n\n"
        "Errors: field validation errors are `{\"field\": [\"message\", ...]}` (400); every other error is "
        "`{\"message\": \"...\", \"extra\": {...}}`. An order refused by the risk gate is a 422 whose "
        "`extra` holds the rule, the numbers and the recorded order. Money, prices and quantities are "
        "strings."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ExchangeAccountStatusEnum": "exchanges.models.ExchangeAccount.Status",
        "OrderStatusEnum": "trading.models.Order.Status",
        "PositionStatusEnum": "trading.models.Position.Status",
        "AgentStatusEnum": "agents.models.AgentConfig.Status",
        "DecisionStatusEnum": "agents.models.Decision.Status",
        "ToolCallStatusEnum": "agents.models.ToolCall.Status",
        "SideEnum": "trading.models.Side",
        "PositionSideEnum": "trading.models.PositionSide",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "alpha_platform.web.api.common.postprocess_errors",
    ],
}

# Where the YAML configuration lives (exchanges.yaml, llm_pricing.yaml).
ALPHA_CONFIG_DIR = Path(env.str("ALPHA_CONFIG_DIR", default=str(BASE_DIR / "config")))

# LLM access (any OpenAI-compatible server).
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")

# Security: production cookies and transport.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REFERRER_POLICY = "same-origin"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# LOG_FORMAT=json: one JSON object per line (time, level, logger, message and any
# `extra=` fields, redacted like the plain lines); plain (default) for a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain").lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json (got {LOG_FORMAT!r})")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "alpha_platform.common.logging.RedactSecretsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "alpha_platform.common.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "ccxt": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# Reconciliation's rule for an order the venue does not know (after a lost answer, or one a
# venue lists late): LOST only after this many failed look-ups (one per pass) AND this long
# since it was sent. One "not found" is never proof.
RECONCILE_LOST_AFTER_LOOKUPS = env.int("RECONCILE_LOST_AFTER_LOOKUPS", default=3)
RECONCILE_LOST_AFTER_SECONDS = env.float("RECONCILE_LOST_AFTER_SECONDS", default=60.0)

# Platform-wide periodic work (per-agent schedules are PeriodicTask rows made by the
# agent services). The DatabaseScheduler copies these into the database.
CELERY_BEAT_SCHEDULE = {
    "reconcile-all-accounts": {
        "task": "trading.reconcile_all",
        "schedule": env.float("RECONCILE_INTERVAL_SECONDS", default=60.0),
    },
    # Decisions left running by a worker that was killed are closed as errors.
    "close-abandoned-decisions": {"task": "agents.close_abandoned_decisions", "schedule": 60.0},
}

# Agents: the hard bound on one decision tick, and the LLM client's timeout and retries.
AGENT_TICK_TIME_LIMIT = env.int("AGENT_TICK_TIME_LIMIT", default=120)
# The per-agent Redis lock's TTL; the decision renews it every third of it while it runs
# and stops before its next model call or order if it cannot.
AGENT_LOCK_TTL_SECONDS = env.float("AGENT_LOCK_TTL_SECONDS", default=30.0)
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)
# Every model reply is bounded: at most this many completion tokens are asked for, and a
# response body over LLM_MAX_RESPONSE_BYTES is an error (not read into memory whole).
LLM_MAX_COMPLETION_TOKENS = env.int("LLM_MAX_COMPLETION_TOKENS", default=1024)
LLM_MAX_RESPONSE_BYTES = env.int("LLM_MAX_RESPONSE_BYTES", default=256 * 1024)
# Model servers a user may name (their own base URL) besides public https ones: comma-
# separated host or host:port entries, reached over http or https and on any address
# (loopback, private). The platform's OPENAI_BASE_URL is allowed implicitly. Anything else
# must be https on public addresses only (alpha_platform/common/outbound.py).
LLM_ALLOWED_HOSTS = env.list("LLM_ALLOWED_HOSTS", default=[])

# --- Portal: sign-in, sign-up and sign-in throttling --------------------------------
# Sign-up is off unless enabled; operators create users in the admin otherwise.
PORTAL_SIGNUP_ENABLED = env.bool("PORTAL_SIGNUP_ENABLED", default=False)
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:login"
# One sign-in throttle for the portal, the admin and POST /api/auth/token/ (django-axes;
# alpha_platform/web/login_throttle.py). Failures are counted per (username, address), per
# username and per address; a counter reaching its limit refuses every sign-in it covers,
# even with the right password, for LOGIN_THROTTLE_LOCKOUT_SECONDS (counts expire that long
# after the last failure). A limit of 0 turns that counter off.
LOGIN_THROTTLE_FAILURES = env.int("LOGIN_THROTTLE_FAILURES", default=5)
LOGIN_THROTTLE_USERNAME_FAILURES = env.int("LOGIN_THROTTLE_USERNAME_FAILURES", default=30)
LOGIN_THROTTLE_ADDRESS_FAILURES = env.int("LOGIN_THROTTLE_ADDRESS_FAILURES", default=50)
LOGIN_THROTTLE_LOCKOUT_SECONDS = env.int("LOGIN_THROTTLE_LOCKOUT_SECONDS", default=15 * 60)
# The client address is REMOTE_ADDR unless TRUSTED_PROXY_COUNT proxies of ours stand in
# front and each appends to X-Forwarded-For (nginx's $proxy_add_x_forwarded_for): then it is
# the entry that many places from the right. 0 (the default): forwarded headers are ignored.
# The bundled nginx (deploy/nginx.conf) is one such proxy: 1 there, 2 with a load balancer
# in front that appends too. Never more than the proxies really there: the rest is forgeable.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT must be 0 or more (got {TRUSTED_PROXY_COUNT})")
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT  # DRF's anonymous throttles count the same address

AUTHENTICATION_BACKENDS = [
    "alpha_platform.web.login_throttle.LoginThrottleBackend",  # axes: first, refuses while locked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "alpha_platform.web.login_throttle.LoginThrottleHandler"  # counts in Redis (CACHES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]
AXES_FAILURE_LIMIT = LOGIN_THROTTLE_FAILURES  # per counter: LOGIN_THROTTLE_* above
AXES_COOLOFF_TIME = "alpha_platform.web.login_throttle.cool_off"
AXES_CLIENT_IP_CALLABLE = "alpha_platform.web.login_throttle.client_address"
AXES_USERNAME_CALLABLE = "alpha_platform.web.login_throttle.username_from"
AXES_RESET_ON_SUCCESS = True  # a good sign-in clears its (username, address) counter
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # refusals do not extend a lockout
AXES_ENABLE_ADMIN = False  # the cache handler writes no AccessAttempt rows to list
AXES_VERBOSE = False
# Each door answers a lockout itself (the forms' message, the API's 429); axes' middleware
# would replace that page, and under ASGI (axes 8.3.1) it drops the view's response.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]

# --- Operations: Celery queues, broker outages, health checks (docs/deployment.md) ---
# Work is split into queues by kind so that worker machines can be dedicated to one kind:
#   decisions  agents.tick (the agent's decision, and the orders it places: order
#              placement runs inside the decision, so there is no separate orders queue)
#   reconcile  trading.reconcile_all, trading.account_reconcile
#   celery     the default: anything else (health heartbeats, future tasks)
# A worker started without -Q consumes every queue listed here (make run, tests); a
# dedicated machine passes -Q decisions (or -Q reconcile,celery).
from kombu import Queue  # noqa: E402

CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("decisions"), Queue("reconcile"), Queue("celery"))
CELERY_TASK_ROUTES = {
    "agents.tick": {"queue": "decisions"},
    "trading.reconcile_all": {"queue": "reconcile"},
    "trading.account_reconcile": {"queue": "reconcile"},
    "agents.close_abandoned_decisions": {"queue": "reconcile"},
}
# A broker restart or fail-over must not drop what beat (or the web) sends meanwhile:
# publishing retries for ~30 s (0, 0.5, 1, 1, ... s) before giving up, instead of ~1 s.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": env.int("CELERY_PUBLISH_MAX_RETRIES", default=30),
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# Worker and beat log through LOGGING above (JSON when LOG_FORMAT=json, and always
# through the secret-redacting filter) instead of Celery replacing the root handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# /healthz (alpha_platform/web/health.py). Beat sends alpha_platform.heartbeat to each queue
# every HEALTH_HEARTBEAT_SECONDS; the beat check is the age of the last one sent, the
# worker check the age of the last one run from each queue (a live ping when beat is down).
HEALTH_HEARTBEAT_SECONDS = env.float("HEALTH_HEARTBEAT_SECONDS", default=15.0)
HEALTH_BEAT_MAX_AGE_SECONDS = env.float("HEALTH_BEAT_MAX_AGE_SECONDS", default=60.0)
HEALTH_WORKER_MAX_AGE_SECONDS = env.float("HEALTH_WORKER_MAX_AGE_SECONDS", default=60.0)
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=1.0)
for _queue in ("decisions", "reconcile", "celery"):
    CELERY_BEAT_SCHEDULE[f"health-heartbeat-{_queue}"] = {
        "task": "alpha_platform.heartbeat",
        "schedule": HEALTH_HEARTBEAT_SECONDS,
        "args": (_queue,),
        # A heartbeat nobody ran within the freshness window is worthless: drop it.
        "options": {"queue": _queue, "expire_seconds": int(HEALTH_WORKER_MAX_AGE_SECONDS)},
    }

# Venue user-data streams (manage.py venue_streams; trading.services.streams).
VENUE_STREAMS_REFRESH_SECONDS = env.float("VENUE_STREAMS_REFRESH_SECONDS", default=10.0)  # new/disabled accounts
VENUE_STREAMS_PAPER_INTERVAL = env.float("VENUE_STREAMS_PAPER_INTERVAL", default=0.25)  # paper book reads
VENUE_STREAMS_GAP_GRACE_SECONDS = env.float("VENUE_STREAMS_GAP_GRACE_SECONDS", default=2.0)  # unpaired fill -> gap
VENUE_STREAMS_LOCK_TTL_SECONDS = env.float("VENUE_STREAMS_LOCK_TTL_SECONDS", default=30.0)  # one per deployment
VENUE_STREAMS_BINANCE_WS_URL = env("BINANCE_FSTREAM_URL", default="wss://fstream.binance.com/ws")
VENUE_STREAMS_BINANCE_WS_TESTNET_URL = env("BINANCE_FSTREAM_TESTNET_URL", default="wss://stream.binancefuture.com/ws")
# Blank: the SDK's own rule, the REST URL's host with /ws.
VENUE_STREAMS_HYPERLIQUID_WS_BASE_URL = env("HYPERLIQUID_WS_BASE_URL", default="")
