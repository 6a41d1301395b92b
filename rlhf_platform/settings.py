"""Django settings, read from the environment.

Every value a deployment may change comes from an environment variable through
the typed helpers in ``rlhf_platform.env``; README.md lists them.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from rlhf_platform.env import env_bool, env_float, env_int, env_list, env_paths, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Writable state of the embedded default: SQLite database, dev secret key, uploads, models.
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", default=False)


def _read_or_create_dev_secret_key(var_dir: Path) -> str:
    """A per-checkout key for local development, so sessions survive restarts."""
    key_file = var_dir / "dev_secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY, or DEBUG=1 for local development."
        )
    SECRET_KEY = _read_or_create_dev_secret_key(VAR_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Model weights and datasets are only ever loaded from local paths.
HF_HUB_OFFLINE = env_bool("HF_HUB_OFFLINE", default=True)
if HF_HUB_OFFLINE:
    os.environ["HF_HUB_OFFLINE"] = "1"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "auditlog",
    "channels",
    "axes",
    "rlhf_platform",
    "labeling",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "rlhf_platform.middleware.api_errors_as_json",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during the login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "rlhf_platform.urls"
WSGI_APPLICATION = "rlhf_platform.wsgi.application"
ASGI_APPLICATION = "rlhf_platform.asgi.application"
# Views running at once in each ASGI worker process; later requests wait their turn in order
# (0: no limit). A slow view (a large import, a dataset build) holds its slot while it runs.
ASGI_MAX_CONCURRENT_VIEWS = env_int("ASGI_MAX_CONCURRENT_VIEWS", 2, minimum=0)

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
                "rlhf_platform.context_processors.roles",
            ],
        },
    },
]

# Database: SQLite under VAR_DIR by default, PostgreSQL (psycopg 3) through DATABASE_URL.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_health_checks=True)
except ValueError as error:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {error}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    if _database["NAME"] != ":memory:":
        Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web server and the worker write concurrently: WAL lets readers continue during a
    # write, and IMMEDIATE takes the write lock up front instead of failing mid-transaction.
    _database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file, not memory: live-server tests answer from other threads and processes,
    # which an in-memory database would share one connection with.
    _database["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
elif _database["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs in a thread of its own, so connections cannot persist
    # between requests (CONN_MAX_AGE does not help); a pool per process saves a new backend
    # and its authentication on every request. Keep workers x max size under max_connections.
    _pool_size = env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=0)
    if _pool_size:
        _database["CONN_HEALTH_CHECKS"] = False
        _database["OPTIONS"] = {"pool": {"min_size": min(2, _pool_size), "max_size": _pool_size, "timeout": 30}}
    # Server-side parameters, and statements prepared once per connection after their second
    # use: PostgreSQL then skips parsing and planning the requests' repeated statements (half
    # its CPU per review cycle, benchmarks/labeling_load.py). Turn off with
    # DATABASE_PREPARED_STATEMENTS=0 behind a transaction-pooling proxy (e.g. PgBouncer's
    # transaction mode), which cannot keep a connection's prepared statements.
    if env_bool("DATABASE_PREPARED_STATEMENTS", default=True):
        _database.setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 2})
        # Django's backend, with batches sized to PostgreSQL's limit on a statement's parameters.
        _database["ENGINE"] = "rlhf_platform.postgresql"
    # An explicit test database name: the Daphne child process of live-server tests would
    # otherwise connect to "test_test_<db>" (django/channels#2176).
    _database["TEST"] = {"NAME": f"test_{_database['NAME']}"}
else:
    raise ImproperlyConfigured(f"DATABASE_URL must point at PostgreSQL or SQLite, got engine {_database['ENGINE']!r}.")
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Realtime: in-process channel layer by default, Redis when REDIS_URL is set.
REDIS_URL = env_str("REDIS_URL")
# Seconds a read from Redis may take. channels-redis waits for a consumer's next message with a
# blocking pop of 5 s (RedisChannelLayer.brpop_timeout), and redis-py 8 gives up reading after 5 s
# by default: every quiet socket then died with TimeoutError (django/channels_redis#422). Above the
# pop's 5 s, a dead Redis is still noticed. A ?socket_timeout= in REDIS_URL wins over it.
REDIS_SOCKET_TIMEOUT_S = 30.0
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT_S}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Preference dataset snapshots (immutable JSONL files named by their content hash).
DATASETS_DIR = VAR_DIR / "datasets"
# Imports' uploads waiting for the worker, and the progress files of running data jobs (web and worker share it).
DATA_JOBS_DIR = VAR_DIR / "jobs"
# Largest task file an import accepts (upload, API or command line).
LABELING_IMPORT_MAX_BYTES = env_int("IMPORT_MAX_MB", 512, minimum=1) * 2**20
# Largest request body anywhere else; both are refused before they are read (rlhf_platform/body_limits.py).
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_MAX_MB", 10, minimum=1) * 2**20
# Django's own cap on a body read into memory (form fields, JSON): the same, so a JSON body
# between its default 2.5 MB and the limit above is not refused with a bare 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
# Uploads above this size are streamed to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 2**20

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttling (django-axes), on the login page and on POST /api/auth/token/ alike: after
# LOGIN_FAILURE_LIMIT failed passwords for a username from one address, that username is refused
# there, right password or not, until LOGIN_COOLOFF_MINUTES pass without another try (every
# refused try restarts the wait, so hammering never gets through). Counted per username and
# address together: users behind one office proxy share an address and must not lock each other
# out, and an attacker elsewhere cannot lock a user out of their own desk.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_LOCKOUT_CALLABLE = "rlhf_platform.lockout.lockout_response"
# Behind reverse proxies every request comes from a proxy's address, so the lock would fall on the
# username alone and anyone could keep a user out. TRUSTED_PROXY_COUNT names how many proxies stand
# in front of the server: the client's address is then taken from X-Forwarded-For, past them.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "rlhf_platform.lockout.client_address"
# API tokens: POST /api/auth/token/ (username and password) issues a new token valid for this many
# days (0: no expiry); it is also the default of tokens created through the API.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 30, minimum=0)
# A token's "last used" time is written at most once per this many seconds: writing it on every
# request would add a write to each of the reviewer loop's hundreds of requests per second.
API_TOKEN_LAST_USED_INTERVAL_S = 300

# How long a set-password link (an invitation, or a new link a manager issues) stays valid. A link
# works once: setting the password changes what its token is made from (rlhf_platform/services.py).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_LINK_HOURS", 72, minimum=1) * 3600

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Static files are served in front of Django, by ServeStatic (rlhf_platform/static_files.py): with DEBUG
# on straight from the apps' static/ folders, without collectstatic.

# Security. Cookies are secure and HTTP redirects to HTTPS whenever DEBUG is off; HSTS is
# opt-in because browsers remember it.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12, minimum=60)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles, images and connections from this origin
# only (websockets included), no plugins, no framing. The few inline <style>/<script> blocks carry
# the request's nonce (``request.csp_nonce``); no page uses inline event handlers or style
# attributes (bars are SVG shapes sized by attributes), so neither needs 'unsafe-inline'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    # Token first: unauthenticated API calls then get 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rlhf_platform.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's parsers, with JSON nested beyond a limit refused (rlhf_platform/json_limits.py).
    "DEFAULT_PARSER_CLASSES": [
        "rlhf_platform.json_limits.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "rlhf_platform.openapi.AutoSchema",
    # List views name their own pagination (rlhf_platform/pagination.py).
    "EXCEPTION_HANDLER": "rlhf_platform.errors.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF Platform API",
    "DESCRIPTION": "Campaigns, judgements, preference datasets, training runs and models.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fields named "status" with different choices: each set is named here, the campaigns' keeping
    # the name it had when it was the only one.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "labeling.models.CampaignStatus",
        "ApiTokenStatusEnum": "rlhf_platform.models.ApiTokenStatus",
        # The people API names roles as people do; /api/me/ by their group names.
        "PersonRoleEnum": "rlhf_platform.roles.ROLE_LABELS",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Server errors reach the console even when DEBUG is off, tests included.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# Training (training/): where runs keep their data and outputs, and how the worker runs them.
TRAINING_DIR = VAR_DIR / "training"
# Where model and data paths typed into the pages and the API may point (symlinks and ".." resolved
# first): VAR_DIR/models and VAR_DIR/data, and the absolute directories MODEL_ROOTS and DATA_ROOTS
# list (colon- or comma-separated). manage.py register_model, run by an operator, is not confined.
MODEL_ROOTS = [VAR_DIR / "models", *env_paths("MODEL_ROOTS")]
DATA_ROOTS = [VAR_DIR / "data", *env_paths("DATA_ROOTS")]
# Corpora uploaded on the round launch page, one directory per upload (inside VAR_DIR/data).
TRAINING_UPLOADS_DIR = VAR_DIR / "data" / "uploads"
# Benchmark data of the evaluate stage (`make benchmark-data` fetches it there); absent, no benchmarks run.
BENCHMARK_DATA_DIR = Path(env_str("BENCHMARK_DATA_DIR", str(VAR_DIR / "benchmark-data")))
# The executor class the worker starts the engine with (training/executors.py).
TRAINING_EXECUTOR = env_str("TRAINING_EXECUTOR", "training.executors.LocalExecutor")
# GPUs per run: above 1, the local executor starts the engine under `accelerate launch`.
TRAINING_GPUS = env_int("TRAINING_GPUS", 0, minimum=0)
# Torch/OpenMP threads of the engine process; 0 leaves the library default (every core). The default
# is half the cores this process may use (its CPU affinity, which a container's cpuset narrows): torch
# on every core starves the web server and the database beside the worker, and on a busy machine its
# threads then wait on each other (up to 50x slower on small models).
_usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
TRAINING_ENGINE_THREADS = env_int("TRAINING_ENGINE_THREADS", max(1, _usable_cores // 2), minimum=0)
# Seconds between worker heartbeats (and cancel checks), and after which a silent run is interrupted.
TRAINING_HEARTBEAT_S = env_int("TRAINING_HEARTBEAT_S", 5, minimum=1)
TRAINING_STALE_AFTER_S = env_int("TRAINING_STALE_AFTER_S", 120, minimum=2)
# Seconds the worker sleeps when the queue is empty.
TRAINING_POLL_S = env_int("TRAINING_POLL_S", 2, minimum=1)
# The worker's name, stable across restarts, so a restarted worker recovers its own runs at once
# (`manage.py worker --name` wins; empty: the host name). Two live workers never share a name.
WORKER_NAME = env_str("WORKER_NAME", "")
# Seconds a stopping worker (SIGTERM, SIGINT) waits for its engine to checkpoint and for a running
# import or build to end; then it stops them. A service manager's stop timeout must exceed it.
TRAINING_STOP_GRACE_S = env_int("TRAINING_STOP_GRACE_S", 60, minimum=1)
# Seconds between a live worker's looks for runs whose worker went silent (TRAINING_STALE_AFTER_S).
TRAINING_SWEEP_S = env_int("TRAINING_SWEEP_S", 30, minimum=1)
# Times a run (or generation job) interrupted by its worker stopping or dying is queued again
# automatically, from its last checkpoint; 0: only by hand.
TRAINING_AUTO_RESUME = env_int("TRAINING_AUTO_RESUME", 1, minimum=0)
# Seconds between the live pages' database reads. The worker's messages reach the web server only
# through a shared channel layer: with Redis they bring every change at once and the read is a slow
# safety net (a message lost while Redis restarted); with the in-memory layer the read is all there is.
TRAINING_LIVE_POLL_SECONDS = env_float("TRAINING_LIVE_POLL_SECONDS", 20.0 if REDIS_URL else 1.0, minimum=0.05)
# Lines of the engine's stderr kept on the run.
TRAINING_LOG_TAIL_LINES = env_int("TRAINING_LOG_TAIL_LINES", 200, minimum=10)
