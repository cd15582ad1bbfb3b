"""Settings, read from the environment (see README "Configuration").

With nothing set, Workout runs embedded: an SQLite file and Celery tasks executed in-process, so the
demo needs nothing installed. `DATABASE_URL=postgres://...` and `CELERY_BROKER_URL=redis://...` give the
real stack.
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from csp.constants import UNSAFE_INLINE as CSP_UNSAFE_INLINE
from kombu import Exchange, Queue

from config.queues import queue_names

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# A fixed key is only acceptable in DEBUG; production must set SECRET_KEY (check --deploy says so too).
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-dev-only-key-set-SECRET_KEY-in-production-0123")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First: its createsuperuser and changepassword (audited) replace django.contrib.auth's, which a later app
    # cannot do (of two commands of one name, the first app listed wins).
    "core.auth_commands",
    "core.apps.AdminConfig",  # Django's admin on our site: second factor, read-only (core/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from this site (the CSP refuses a CDN)
    "django_fsm",
    "pgtrigger",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "django_htmx",
    "django_tables2",  # the queue's table (restructuring/views/queue_table.py)
    "django_filters",  # the queue's filters (restructuring/selectors/queue_filters.py)
    "core",
    "accounts",
    "restructuring",
    "rules",
    "demo",  # the demo and the benchmarks' data: above every domain app, imported by none
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.preferences.UserLanguageMiddleware",  # the signed-in user's language (core/preferences.py)
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: it answers locked-out logins (django-axes).
    "axes.middleware.AxesMiddleware",
]

# Content-Security-Policy (django-csp): scripts only from this site's own files, so an injected <script> or an
# inline event handler does not run; no plugins, no framing, forms post only here. Styles may be inline (the
# templates keep their page styles in <style> blocks and htmx adds its indicator style). Charts are inline SVG
# whose scripts pygal is told not to emit (restructuring/charts.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF, CSP_UNSAFE_INLINE],
        "img-src": [CSP_SELF, "data:"],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
        "form-action": [CSP_SELF],
    }
}

# django-axes first: it refuses a login from a locked-out user or address before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Services own their transactions (Zulip's rule), so requests are not wrapped in one.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# Workers survive a database restart: a dead persistent connection is noticed and replaced.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database host that stops answering (rather than refusing) would otherwise hold a worker's connect
    # for as long as TCP retries; past this the task fails with OperationalError and retries with backoff.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=10)
    )
if DATABASES["default"]["ENGINE"].endswith("postgresql") and not env.bool("DATABASE_JIT", default=False):
    # PostgreSQL's JIT compiles any statement whose estimated cost is high, and the sweep's bulk statements
    # look costly to the planner while running in tens of milliseconds: the history insert of a sweep spent
    # 0.43 s compiling to run in 0.08 s. Nothing here is a long analytic query that would repay it.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded demo: a writer waits for the database lock at BEGIN instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The languages the pages ship in (locale/<code>/LC_MESSAGES/django.po, compiled .mo committed); each member of
# staff chooses theirs (core/preferences.py). Money follows the language's conventions (core.money.money_text).
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files Workout keeps (restructuring agreements, clients' documents, letters) go through Django's storage API, into
# the "default" storage: a directory (MEDIA_ROOT) by default, which no URL serves (every download is a view that
# checks who asks), or an S3-compatible bucket (django-storages) with WORKOUT_FILE_STORAGE=s3: private objects,
# never overwritten, credentials from boto3's own sources (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the
# instance's role). Nothing is served from MEDIA_URL.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
WORKOUT_FILE_STORAGE = env.str("WORKOUT_FILE_STORAGE", default="filesystem")
WORKOUT_S3_BUCKET = env.str("WORKOUT_S3_BUCKET", default="")
_FILE_STORAGES = {
    "filesystem": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # MEDIA_ROOT, read when used (so a test may point it elsewhere); files and directories for this user only
        "OPTIONS": {"file_permissions_mode": 0o600, "directory_permissions_mode": 0o700},
    },
    "s3": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": WORKOUT_S3_BUCKET,
            "endpoint_url": env.str("WORKOUT_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("WORKOUT_S3_REGION", default="") or None,
            "location": env.str("WORKOUT_S3_PREFIX", default=""),
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    },
}
if WORKOUT_FILE_STORAGE not in _FILE_STORAGES:
    raise ValueError(f"WORKOUT_FILE_STORAGE={WORKOUT_FILE_STORAGE!r}: one of {', '.join(_FILE_STORAGES)}")
STORAGES = {
    "default": _FILE_STORAGES[WORKOUT_FILE_STORAGE],
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: production defaults, relaxed only by DEBUG or explicit environment ---
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True  # the session expires when idle, not at a fixed time after login
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# A document a client or an officer uploads (restructuring/services/documents.py) is refused above this many bytes.
WORKOUT_DOCUMENT_MAX_BYTES = env.int("WORKOUT_DOCUMENT_MAX_BYTES", default=10 * 1024 * 1024)

# --- Officer UI: sign-in (owned by the UI's login views; core/access.py) ---
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "queue"
LOGOUT_REDIRECT_URL = "login"
OTP_TOTP_ISSUER = "Workout"
# A member of staff's one-time enrolment link (core/staff.py) is good this long after an administrator issues it.
WORKOUT_ENROLMENT_HOURS = env.float("WORKOUT_ENROLMENT_HOURS", default=24.0)
# django-axes: five failed sign-ins lock the username from that address for 15 minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Reverse proxies in front of the app that append the client's address to X-Forwarded-For (0: none, the header
# is ignored). The lockout's address is the one the outermost of them saw (core/client_ip.py).
WORKOUT_TRUSTED_PROXIES = env.int("WORKOUT_TRUSTED_PROXIES", default=0)
AXES_CLIENT_IP_CALLABLE = "core.client_ip.client_ip"

# The cache, where the API's per-token throttle counts live: in-process by default (the embedded demo, tests),
# so each process counts for itself. Production shares one across processes and hosts, Redis through Django's
# built-in backend (the `redis` package, pinned): CACHE_URL=redis://host:6379/1, as docker-compose.yml sets it;
# `check --deploy` warns while it is local memory (workout.W002).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- REST framework: the client API (core/api/ and, for the tokens, accounts/tokens/ hold the policies named here) ---
# Deny by default: a view without a declared policy refuses everyone. Bearer tokens only (no session: no CSRF
# to get wrong); JSON only; errors in one shape; throttled per token; bounded pages and bodies.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.tokens.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.DenyAll"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.tokens.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env.str("WORKOUT_API_RATE", default="1200/minute")},
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.ApiAutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
}
# Bodies of JSON requests are refused above this (413); uploads (book, prices) above DATA_UPLOAD_MAX_MEMORY_SIZE.
WORKOUT_API_MAX_BODY_BYTES = env.int("WORKOUT_API_MAX_BODY_BYTES", default=64 * 1024)
# JSON (API bodies and import files) nesting deeper than this is refused (400) before it is parsed: Python's
# parser recurses once per level, and 20,000 levels were a RecursionError. The deepest legitimate document, a
# book file, nests 5 levels.
WORKOUT_JSON_MAX_DEPTH = env.int("WORKOUT_JSON_MAX_DEPTH", default=32)
# The cache the per-token request counts live in: give a shared one (Redis) for a limit across processes.
WORKOUT_API_THROTTLE_CACHE = env.str("WORKOUT_API_THROTTLE_CACHE", default="default")
# Idempotency records are kept this long (`manage.py api_token purge-idempotency` deletes older ones).
WORKOUT_API_IDEMPOTENCY_DAYS = env.int("WORKOUT_API_IDEMPOTENCY_DAYS", default=7)
SPECTACULAR_SETTINGS = {
    "TITLE": "Workout API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "The client API of Workout: your margin accounts, positions and loan, your cases and their timeline, "
        "the offers made to you (accept, decline, counter-propose) with their restructuring agreements (PDF), "
        "collateral top-ups, promises to pay and your documents (upload, download); plus operations endpoints for "
        "staff.\n\n"
        "**Agreements**: each offer is sent with its agreement, a PDF whose SHA-256 is the offer's "
        "`agreement_sha256`; accept naming it, and another agreement (an earlier offer's) is refused (409).\n\n"
        "**Authentication**: `Authorization: Bearer <token>` (see the `token` security scheme).\n\n"
        "**Idempotency**: every POST that changes state needs an `Idempotency-Key` header; a retry with the same "
        "key and body replays the first response, the same key with another body is refused (422).\n\n"
        '**Errors** have one shape: `{"error": {"code", "message", "field"}}`.\n\n'
        '**Amounts** are decimal strings (`"1234.50"`), in and out; JSON numbers are refused for amounts. Plain '
        "notation only: ASCII digits, optionally a point and more digits (no spaces, underscores, exponent, plus "
        "sign or other digits), at most 20 digits before the point, and for an amount of money at most its "
        "currency's decimal places (2 for USD, 8 for BTC). Money comes back with its currency's places "
        '(`"19500.00"`); prices, quantities, rates and fractions with 8. Whole numbers (`term_months`, `account`) '
        "are JSON integers.\n\n"
        "**Lists** are paginated (`page`, `page_size` up to 200). Requests are throttled per token (429 with "
        "Retry-After); JSON bodies are limited to 64 KiB (413) and to 32 levels of nesting (400 `json_too_deep`). "
        "Documents are uploaded as multipart/form-data: a PDF, PNG or JPEG, told by its content, up to 10 MiB by "
        "default (400 naming the problem otherwise).\n\n"
        "**Webhooks**: your endpoints (`/webhooks/`) receive a signed POST for each event they subscribe to. The "
        "event types are `GET /events/` (with their payloads' JSON Schemas) and, here, the extension "
        "`x-workout-webhooks`: each type named, referring to the component of its body (`MarginCallEvent`, its "
        "`data` `MarginCallEventData`, ...). The body is signed with the endpoint's secret: the header "
        "`X-Workout-Signature: sha256=<hex>` is the HMAC-SHA256 of the exact body bytes (during a rotation's overlap, "
        "`sha256=<new>,sha256=<old>`: accept either)."
    ),
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "CaseStateEnum": "restructuring.models.CaseState",
        "ProposalStateEnum": "restructuring.models.ProposalState",
        "HealthBandEnum": "accounts.models.HealthBand",
        # two "source" fields: where a proposal came from, and who made a promise to pay
        "ProposalSourceEnum": "restructuring.models.ProposalSource",
        "PromiseSourceEnum": "restructuring.models.PromiseSource",
        # a third "state" field, besides the case's and the proposal's: a webhook endpoint's
        "WebhookEndpointStateEnum": "accounts.models.WebhookEndpointState",
        # and a document's; its "kind" beside the terms' (the schedule's, named KindEnum before documents came)
        "DocumentSourceEnum": "restructuring.models.DocumentSource",
        "DocumentKindEnum": "restructuring.models.DocumentKind",
        "KindEnum": ["level", "interest_only"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.strict_objects",
        # the event catalogue: a component per webhook event and the x-workout-webhooks extension
        "restructuring.events.openapi_events",
    ],
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True},
    # /api/docs/ and /api/redoc/ load their assets from this site's static files (drf-spectacular-sidecar, pinned)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ---
# Unset broker: the embedded mode runs tasks in-process (eager), so the demo needs no Redis.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="")
# Queues by urgency (config/queues.py): CELERY_QUEUE is the prefix, and the default queue (notifications and
# maintenance); <prefix>.risk, <prefix>.negotiation and <prefix>.feasibility take the rest.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="workout")
# Each queue on a direct exchange of its own name (as Celery makes a queue it is sent to without a declaration).
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in queue_names(CELERY_TASK_DEFAULT_QUEUE)]
CELERY_TASK_ROUTES = ("config.queues.route_task",)
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is redelivered; tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacknowledged task (its worker killed) is delivered again after this. Tasks run seconds (the longest,
    # a 1,000,000-account sweep shard, about 15 s), so ten minutes loses little time yet never redelivers a
    # task still running; every task is idempotent either way.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "sweep": {
        "task": "accounts.tasks.sweep_run_task",
        "schedule": env.float("WORKOUT_SWEEP_EVERY_SECONDS", default=60.0),
    },
    "sweeps-redrive": {
        "task": "accounts.tasks.sweeps_redrive_task",
        "schedule": env.float("WORKOUT_SWEEP_REDRIVE_AFTER_SECONDS", default=300.0),
    },
    "deadlines": {
        "task": "restructuring.tasks.deadlines_run_task",
        "schedule": env.float("WORKOUT_DEADLINES_EVERY_SECONDS", default=60.0),
    },
    "notifications": {
        "task": "restructuring.tasks.notifications_drain_task",
        "schedule": env.float("WORKOUT_NOTIFICATIONS_EVERY_SECONDS", default=60.0),
    },
    "negotiation-deadlines": {
        "task": "restructuring.tasks.negotiation_deadlines_task",
        "schedule": env.float("WORKOUT_DEADLINES_EVERY_SECONDS", default=60.0),
    },
    "promises": {
        "task": "restructuring.tasks.promises_track_task",
        "schedule": env.float("WORKOUT_PROMISES_EVERY_SECONDS", default=300.0),
    },
    "api-idempotency-purge": {
        "task": "core.tasks.idempotency_purge_task",
        "schedule": env.float("WORKOUT_API_IDEMPOTENCY_PURGE_EVERY_SECONDS", default=3600.0),
    },
    "feasibility-redrive": {
        "task": "restructuring.tasks.feasibility_redrive_task",
        "schedule": env.float("WORKOUT_FEASIBILITY_REDRIVE_EVERY_SECONDS", default=300.0),
    },
    "volatility-redrive": {
        "task": "accounts.tasks.volatility_redrive_task",
        "schedule": env.float("WORKOUT_VOLATILITY_REDRIVE_EVERY_SECONDS", default=300.0),
    },
    "sla-escalate": {
        "task": "restructuring.tasks.sla_escalate_task",
        "schedule": env.float("WORKOUT_SLA_EVERY_SECONDS", default=300.0),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # WeasyPrint logs each step of every PDF it draws at INFO; its warnings (a resource refused) stay.
    "loggers": {"weasyprint.progress": {"level": "WARNING"}, "fontTools": {"level": "WARNING"}},
}

# --- Workout: risk parameters (documented in README "Configuration"; defaults from docs/domain.md) ---
WORKOUT_WARNING_LEVEL = env.float("WORKOUT_WARNING_LEVEL", default=1.25)
# Risk-free rate used to price options (annual, continuously compounded).
WORKOUT_RISK_FREE_RATE = env.float("WORKOUT_RISK_FREE_RATE", default=0.04)
# Portfolio-margin accounts: initial requirement = worst scenario loss x this factor (a house buffer, so
# that meeting a call restores headroom above maintenance).
WORKOUT_PORTFOLIO_INITIAL_FACTOR = env.float("WORKOUT_PORTFOLIO_INITIAL_FACTOR", default=1.25)
# Scenario grid (Cboe/OCC TIMS): `steps` equally spaced moves on each side up to the class's limits,
# plus no move, each at implied volatility unchanged, up and down by the relative shifts.
WORKOUT_SCENARIO_STEPS_PER_SIDE = env.int("WORKOUT_SCENARIO_STEPS_PER_SIDE", default=5)
WORKOUT_SCENARIO_VOL_SHIFT_UP = env.float("WORKOUT_SCENARIO_VOL_SHIFT_UP", default=0.25)
WORKOUT_SCENARIO_VOL_SHIFT_DOWN = env.float("WORKOUT_SCENARIO_VOL_SHIFT_DOWN", default=0.25)
WORKOUT_SCENARIO_RANGES = {
    # class: (largest fall, largest rise)
    "equity": (-0.15, 0.15),  # single names and narrow indexes (TIMS / FINRA 4210(g))
    "broad_index": (-0.08, 0.06),  # high-capitalisation broad-based indexes
    "index": (-0.10, 0.10),  # other broad-based indexes
    "crypto": (-0.16, 0.16),  # Deribit-style portfolio margin range
}
# Dynamic margin: rates scale by max(1, sigma_eff / sigma_ref) with sigma_t the EWMA volatility
# (RiskMetrics lambda) and sigma_eff = (1 - w) sigma_t + w sigma_stressed (EMIR anti-procyclicality:
# at least 25% weight on stressed observations).
WORKOUT_DYNAMIC_MARGIN = env.bool("WORKOUT_DYNAMIC_MARGIN", default=True)
WORKOUT_EWMA_LAMBDA = env.float("WORKOUT_EWMA_LAMBDA", default=0.94)
WORKOUT_STRESS_WEIGHT = env.float("WORKOUT_STRESS_WEIGHT", default=0.25)
WORKOUT_VOLATILITY_LOOKBACK_DAYS = env.int("WORKOUT_VOLATILITY_LOOKBACK_DAYS", default=3650)
# Snapshot history: a history row when the band changes, and at least this often per account.
WORKOUT_SNAPSHOT_HISTORY_INTERVAL_HOURS = env.float("WORKOUT_SNAPSHOT_HISTORY_INTERVAL_HOURS", default=24.0)
# The sweep may be split into this many account-range shards run as a Celery group.
WORKOUT_SWEEP_SHARDS = env.int("WORKOUT_SWEEP_SHARDS", default=1)
# A sweep still running after this many seconds has its unfinished shards queued again (a lost task).
WORKOUT_SWEEP_REDRIVE_AFTER_SECONDS = env.float("WORKOUT_SWEEP_REDRIVE_AFTER_SECONDS", default=300.0)
# Decimal places each currency is stored and shown to; unknown currencies use 2.
WORKOUT_CURRENCY_DECIMALS = {"USD": 2, "EUR": 2, "GBP": 2, "USDT": 2, "USDC": 2, "BTC": 8, "ETH": 8}

# --- Workout: cases (restructuring/services/case_sweep.py) ---
# A margin call asks for the shortfall to the initial requirement ("initial", so a met call restores a buffer)
# or to the maintenance requirement ("maintenance"), within this many hours.
WORKOUT_CALL_BASIS = env.str("WORKOUT_CALL_BASIS", default="initial")
WORKOUT_MARGIN_CALL_DEADLINE_HOURS = env.float("WORKOUT_MARGIN_CALL_DEADLINE_HOURS", default=24.0)
# A margin call unmet this many hours after its deadline goes to liquidation (the beat checks every minute).
WORKOUT_LIQUIDATION_GRACE_HOURS = env.float("WORKOUT_LIQUIDATION_GRACE_HOURS", default=1.0)
# Liquidation plans: at most this fraction of an asset's daily volume a day, square-root impact with this Y
# (cost = Y x daily volatility x sqrt(quantity / daily volume) of the notional), at most this many days.
WORKOUT_LIQUIDATION_PARTICIPATION = env.float("WORKOUT_LIQUIDATION_PARTICIPATION", default=0.10)
WORKOUT_IMPACT_COEFFICIENT = env.float("WORKOUT_IMPACT_COEFFICIENT", default=0.7)
WORKOUT_LIQUIDATION_MAX_DAYS = env.int("WORKOUT_LIQUIDATION_MAX_DAYS", default=30)
# --- Workout: feasibility (restructuring/feasibility.py; README "Feasibility") ---
# Monte Carlo paths, liquidation horizon in trading days, the lender's discount rate (annual, monthly
# compounding), the real-world drift of prices (annual, 0: no view), the stress for days-to-default (the price
# trends against the account at this many daily volatilities a day), optional Merton jumps (per year; log-jump
# mean and volatility), the longest term valued, and correlation: estimated from this many days of closes,
# pairs with too little common history taking the configured value.
WORKOUT_FEASIBILITY_PATHS = env.int("WORKOUT_FEASIBILITY_PATHS", default=10_000)
WORKOUT_FEASIBILITY_HORIZON_DAYS = env.int("WORKOUT_FEASIBILITY_HORIZON_DAYS", default=30)
WORKOUT_FEASIBILITY_DISCOUNT_RATE = env.float("WORKOUT_FEASIBILITY_DISCOUNT_RATE", default=0.08)
WORKOUT_FEASIBILITY_DRIFT_ANNUAL = env.float("WORKOUT_FEASIBILITY_DRIFT_ANNUAL", default=0.0)
WORKOUT_FEASIBILITY_STRESSED_DRIFT_SIGMAS = env.float("WORKOUT_FEASIBILITY_STRESSED_DRIFT_SIGMAS", default=0.2)
WORKOUT_FEASIBILITY_JUMP_INTENSITY = env.float("WORKOUT_FEASIBILITY_JUMP_INTENSITY", default=0.0)
WORKOUT_FEASIBILITY_JUMP_MEAN = env.float("WORKOUT_FEASIBILITY_JUMP_MEAN", default=-0.05)
WORKOUT_FEASIBILITY_JUMP_VOLATILITY = env.float("WORKOUT_FEASIBILITY_JUMP_VOLATILITY", default=0.10)
WORKOUT_FEASIBILITY_MAX_TERM_MONTHS = env.int("WORKOUT_FEASIBILITY_MAX_TERM_MONTHS", default=36)
WORKOUT_FEASIBILITY_CORRELATION_FROM_HISTORY = env.bool("WORKOUT_FEASIBILITY_CORRELATION_FROM_HISTORY", default=True)
WORKOUT_FEASIBILITY_CORRELATION_DAYS = env.int("WORKOUT_FEASIBILITY_CORRELATION_DAYS", default=90)
WORKOUT_FEASIBILITY_DEFAULT_CORRELATION = env.float("WORKOUT_FEASIBILITY_DEFAULT_CORRELATION", default=0.5)
# The same claim, money and costs in both branches (restructuring/feasibility.py, docs/feasibility.md). Every flow
# is discounted at the loan's own rate (WORKOUT_FEASIBILITY_DISCOUNT_RATE only when a loan has none). Recourse: a
# shortfall after a liquidation is collected from the client's declared capacity at this rate (net of collection
# costs), this many months later. A restructuring that defaults costs a second workout: fixed (in the account's
# currency) plus a share of what its liquidation recovers. Affordable: installments within this share of the
# client's means over the term, and a payment missed for lack of funds at most this likely.
WORKOUT_FEASIBILITY_COLLECTION_RATE = env.float("WORKOUT_FEASIBILITY_COLLECTION_RATE", default=0.5)
WORKOUT_FEASIBILITY_COLLECTION_LAG_MONTHS = env.float("WORKOUT_FEASIBILITY_COLLECTION_LAG_MONTHS", default=6.0)
WORKOUT_FEASIBILITY_REDEFAULT_COST_FIXED = env.float("WORKOUT_FEASIBILITY_REDEFAULT_COST_FIXED", default=100.0)
WORKOUT_FEASIBILITY_REDEFAULT_COST_RATE = env.float("WORKOUT_FEASIBILITY_REDEFAULT_COST_RATE", default=0.02)
WORKOUT_FEASIBILITY_AFFORDABILITY_SHARE = env.float("WORKOUT_FEASIBILITY_AFFORDABILITY_SHARE", default=1.0)
WORKOUT_FEASIBILITY_MAX_FUNDING_MISS_PROBABILITY = env.float(
    "WORKOUT_FEASIBILITY_MAX_FUNDING_MISS_PROBABILITY", default=0.05
)
# The client's own chance of missing a monthly payment, by credit tier (a re-default hazard).
WORKOUT_FEASIBILITY_MONTHLY_MISS = {"A": 0.002, "B": 0.005, "C": 0.01, "D": 0.02}
# Cases computed per task when many enter margin call at once.
WORKOUT_FEASIBILITY_BATCH = env.int("WORKOUT_FEASIBILITY_BATCH", default=25)
# The terms every case is valued under before the rules propose their own (restructuring/terms.py fields).
WORKOUT_FEASIBILITY_CANDIDATES = {
    "extend_12m": {"term_months": 12},
    "extend_24m": {"term_months": 24},
    "interest_only_6m": {"term_months": 6, "kind": "interest_only"},
    "top_up_extend_12m": {"term_months": 12, "collateral_to_add": "call_amount"},
    "reduce_half_extend_12m": {"term_months": 12, "reduce_all_fraction": "0.5"},
}

# --- Workout: rules (rules/; README "Rules") ---
# A package of rule actions that sets no term keeps the loan over this many months.
WORKOUT_RULES_DEFAULT_TERM_MONTHS = env.int("WORKOUT_RULES_DEFAULT_TERM_MONTHS", default=12)

# --- Workout: negotiation (restructuring/services/negotiation/; README "Negotiation") ---
# Approval authority by role, per account currency (a user's ApprovalLimit overrides it). A proposal whose debt
# exceeds the approver's authority needs a further approval by someone whose authority covers it.
WORKOUT_APPROVAL_LIMITS = {
    "credit_officer": {"USD": "250000", "EUR": "250000", "USDT": "250000", "USDC": "250000"},
    "senior_credit_officer": {"USD": "5000000", "EUR": "5000000", "USDT": "5000000", "USDC": "5000000"},
}
# Forgiveness (a principal haircut plus the interest a rate cut gives up over the new term, in the account's
# currency) above this needs two distinct approvers, whatever their limits.
WORKOUT_TWO_APPROVALS_ABOVE = env.str("WORKOUT_TWO_APPROVALS_ABOVE", default="10000")
# Approving a proposal the model flags needs an override reason typed by the approver: one it marks unaffordable,
# one whose default probability is at least this, or one worth less to the lender than liquidating now.
WORKOUT_GUARDRAIL_DEFAULT_PROBABILITY = env.str("WORKOUT_GUARDRAIL_DEFAULT_PROBABILITY", default="0.5")
# An offer stands this long; a client's counter-offer may lengthen the term, lower the rate and lower the
# collateral by at most these (unless the officer set other bounds when offering).
WORKOUT_OFFER_HOURS = env.float("WORKOUT_OFFER_HOURS", default=72.0)
# The longest an officer may make an offer stand (the offer form's hours): 30 days.
WORKOUT_OFFER_MAX_HOURS = env.float("WORKOUT_OFFER_MAX_HOURS", default=720.0)
WORKOUT_COUNTER_MAX_EXTRA_MONTHS = env.int("WORKOUT_COUNTER_MAX_EXTRA_MONTHS", default=12)
WORKOUT_COUNTER_MAX_RATE_CUT = env.str("WORKOUT_COUNTER_MAX_RATE_CUT", default="0.02")
WORKOUT_COUNTER_MIN_COLLATERAL_SHARE = env.str("WORKOUT_COUNTER_MIN_COLLATERAL_SHARE", default="0.5")
# Collateral demanded by a restructuring is due this many days after execution; an installment unpaid this many
# days after its due date is missed and the case defaults.
WORKOUT_COLLATERAL_DUE_DAYS = env.int("WORKOUT_COLLATERAL_DUE_DAYS", default=7)
WORKOUT_PAYMENT_GRACE_DAYS = env.int("WORKOUT_PAYMENT_GRACE_DAYS", default=5)
# The lender as the restructuring agreement names it (restructuring/services/agreements.py).
WORKOUT_LENDER_NAME = env.str("WORKOUT_LENDER_NAME", default="Workout Lending")
# Bulk actions on the queue (restructuring/services/bulk.py): the most cases one action takes, and how long after a
# reminder notification another one for the same case is refused.
WORKOUT_BULK_MAX_CASES = env.int("WORKOUT_BULK_MAX_CASES", default=200)
WORKOUT_REMINDER_MIN_HOURS = env.float("WORKOUT_REMINDER_MIN_HOURS", default=24.0)
# A promise to pay is kept when at least its amount x (1 - tolerance) arrives by the end of its date plus the
# grace days (restructuring/services/promises.py): a bank's charges or a day's clearing do not break it.
WORKOUT_PROMISE_GRACE_DAYS = env.int("WORKOUT_PROMISE_GRACE_DAYS", default=1)
WORKOUT_PROMISE_TOLERANCE = env.str("WORKOUT_PROMISE_TOLERANCE", default="0.01")

# --- Workout: the officer's desk (restructuring/services/assignment.py, restructuring/sla.py; README "The desk") ---
# Auto-assignment gives a new case to the least-loaded eligible officer (on a team, not on leave, whose authority
# covers the case's debt), loads counted in urgency points: a case weighs its band's points.
WORKOUT_ASSIGN_WEIGHTS = {"critical": 4, "margin_call": 3, "warning": 1, "healthy": 1}
# The most points of open cases auto-assignment gives one officer (TeamMembership.capacity overrides it).
WORKOUT_ASSIGN_CAPACITY = env.int("WORKOUT_ASSIGN_CAPACITY", default=300)
# SLA targets in hours by clock (a team's Team.sla_hours overrides them); a breach escalates to the team's senior.
WORKOUT_SLA_HOURS = {
    "margin_call_no_proposal": env.float("WORKOUT_SLA_MARGIN_CALL_HOURS", default=24.0),
    "proposal_pending_approval": env.float("WORKOUT_SLA_PENDING_APPROVAL_HOURS", default=8.0),
    "accepted_not_executed": env.float("WORKOUT_SLA_ACCEPTED_HOURS", default=24.0),
    "broken_promise_no_follow_up": env.float("WORKOUT_SLA_BROKEN_PROMISE_HOURS", default=24.0),
}

# Tasks queued (on commit) when a sweep finishes, each called with sweep_id: the book does not import the
# workflow that is built on it.
WORKOUT_AFTER_SWEEP_TASKS = ["restructuring.tasks.cases_apply_risk_task"]

# --- Workout: notifications to clients (restructuring/services/notifications.py, messages.py) ---
# Where the demo's messages are written, one file each, for a newcomer to read what a client would receive.
WORKOUT_OUTBOX_DIR = Path(env.str("WORKOUT_OUTBOX_DIR", default=str(BASE_DIR / "outbox")))
# Email through Django's backend: in DEBUG, to the console and to a file per message under WORKOUT_OUTBOX_DIR/email
# (core/mail.py); SMTP otherwise; tests use locmem.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="core.mail.ConsoleAndFilesEmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(WORKOUT_OUTBOX_DIR / "email"))
# Text messages (core/sms.py): the console backend writes them to standard output (and, in DEBUG, a file each under
# WORKOUT_OUTBOX_DIR/sms); `core.sms.TwilioSmsBackend` sends them through Twilio's Messages API.
WORKOUT_SMS_BACKEND = env.str("WORKOUT_SMS_BACKEND", default="core.sms.ConsoleSmsBackend")
WORKOUT_SMS_FILE_PATH = env.str("WORKOUT_SMS_FILE_PATH", default=str(WORKOUT_OUTBOX_DIR / "sms") if DEBUG else "")
# A provider call that takes longer in all fails, and is retried.
WORKOUT_SMS_TIMEOUT_SECONDS = env.float("WORKOUT_SMS_TIMEOUT_SECONDS", default=5.0)
WORKOUT_TWILIO_API_URL = env.str("WORKOUT_TWILIO_API_URL", default="https://api.twilio.com")
WORKOUT_TWILIO_ACCOUNT_SID = env.str("WORKOUT_TWILIO_ACCOUNT_SID", default="")
WORKOUT_TWILIO_AUTH_TOKEN = env.str("WORKOUT_TWILIO_AUTH_TOKEN", default="")
# The sender: a phone number of the account, or a messaging service (which then chooses it).
WORKOUT_TWILIO_FROM = env.str("WORKOUT_TWILIO_FROM", default="")
WORKOUT_TWILIO_MESSAGING_SERVICE_SID = env.str("WORKOUT_TWILIO_MESSAGING_SERVICE_SID", default="")
# This site's public URL of /hooks/sms/twilio/ (delivery reports: an undelivered SMS bounces); empty: none asked.
WORKOUT_TWILIO_STATUS_CALLBACK_URL = env.str("WORKOUT_TWILIO_STATUS_CALLBACK_URL", default="")
# Who the messages are from: the name every template may sign with, and the letters' sender lines.
WORKOUT_LENDER_NAME = env.str("WORKOUT_LENDER_NAME", default="Workout Lending")
WORKOUT_LENDER_ADDRESS = env.str("WORKOUT_LENDER_ADDRESS", default="1 Example Street\n10115 Berlin\nGermany").replace(
    "\\n", "\n"
)
# An installment's reminder this many days before it is due.
WORKOUT_INSTALLMENT_REMINDER_DAYS = env.int("WORKOUT_INSTALLMENT_REMINDER_DAYS", default=3)
# Letters (and, with the documents, other files) through Django's storage API: the filesystem here by default.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="workout@localhost")
# A reminder this many hours before a margin call's deadline.
WORKOUT_REMINDER_BEFORE_HOURS = env.float("WORKOUT_REMINDER_BEFORE_HOURS", default=4.0)
# Webhooks go to public addresses only (a client's URL that resolves inside the house is refused), unless this
# is set (tests; a client reached over a private link).
WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False)
# A webhook call that takes longer in all (resolving, connecting, TLS, sending, the answer's headers or a slow
# drip of them) fails, and is retried (core/outbound_http.py).
WORKOUT_WEBHOOK_TIMEOUT_SECONDS = env.float("WORKOUT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Certificate authorities trusted for https webhooks (a PEM file); empty: certifi's bundle.
WORKOUT_WEBHOOK_CA_BUNDLE = env.str("WORKOUT_WEBHOOK_CA_BUNDLE", default="")
# A webhook endpoint whose deliveries failed this many times in a row (retries counted, any success resets the
# count) is disabled, its pending deliveries dropped, and its client told by email (docs/events.md). With the
# default retry waits, 20 attempts is about a day of an endpoint that never answers.
WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
# Active webhook endpoints a client may have at once (each event is posted to each subscribed one).
WORKOUT_WEBHOOK_MAX_ENDPOINTS = env.int("WORKOUT_WEBHOOK_MAX_ENDPOINTS", default=10)
# A sender's claim on a batch of notifications: no other sender takes them before it runs out. It must outlast a
# whole batch sent one after another, each send within its timeout (checked at start: core/checks.py).
WORKOUT_NOTIFICATION_LEASE_SECONDS = env.float("WORKOUT_NOTIFICATION_LEASE_SECONDS", default=220.0)
# A failed send is retried after 1, 2, 4, ... times the first wait, capped; after the last attempt it is failed.
WORKOUT_NOTIFICATION_MAX_ATTEMPTS = env.int("WORKOUT_NOTIFICATION_MAX_ATTEMPTS", default=8)
WORKOUT_NOTIFICATION_RETRY_SECONDS = env.float("WORKOUT_NOTIFICATION_RETRY_SECONDS", default=60.0)
WORKOUT_NOTIFICATION_RETRY_MAX_SECONDS = env.float("WORKOUT_NOTIFICATION_RETRY_MAX_SECONDS", default=3600.0)

# --- Workout: webhook secrets at rest (core/encryption.py; README "Configuration") ---
# Fernet keys, comma-separated, newest first: the first encrypts clients' webhook secrets, every one decrypts. To
# rotate: put a new key first, run `manage.py webhook_secrets_reencrypt`, then drop the old key. Unset, a key
# derived from SECRET_KEY is used (the demo needs nothing); `check --deploy` warns about that (workout.W001).
WORKOUT_WEBHOOK_SECRET_KEYS = [
    key.strip() for key in env.list("WORKOUT_WEBHOOK_SECRET_KEYS", default=[]) if key.strip()
]
