"""One settings module for every environment: everything that differs comes from the environment."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
# Development only: `make run` (prepsite.devstack) gives every checkout a random key of its own in var/, and
# the test suite runs on this one. With DEBUG off and no DJANGO_SECRET_KEY, `check --deploy` fails
# (prepsite.checks) and the web process refuses to start (prepsite.wsgi): anyone who knew this key could
# forge sessions and watch tokens. The "django-insecure-" prefix also trips Django's own security.W009.
DEV_SECRET_KEY = "django-insecure-dev-only-key-never-for-production-set-DJANGO_SECRET_KEY"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip() or DEV_SECRET_KEY
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

INSTALLED_APPS = [
    "prepsite.apps.PrepsiteConfig",  # the project's own system checks (no models)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "csp",
    "template_partials",
    "axes",
    "topics",
    "topics.drills",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "prepsite.middleware.UnreadableBodyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "prepsite.middleware.RedisUnavailableMiddleware",
    # Last, as axes asks: it only turns a lockout its backend flagged into our lockout page (no queries).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "prepsite.urls"
WSGI_APPLICATION = "prepsite.wsgi.application"

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
                "prepsite.context_processors.site",
                "topics.drills.context_processors.due_badge",
            ],
            # Django 6 ships these tags built in; registering them as builtins now means no change then.
            "builtins": [
                "template_partials.templatetags.partials",
                "django_htmx.templatetags.django_htmx",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web server write concurrently: WAL (set once by migration sandbox 0002) plus
    # IMMEDIATE transactions avoid "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 5,  # a busy database makes a request wait this long at most, then 503 (never a 500)
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions live in the database so the site keeps working when Redis is down.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 365

# Per-process memory only: nothing here may depend on Redis, which the Study pages must survive without.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
    "pages": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pages"},
}

# The one Redis configuration: the site's own code uses the lab queue's (prepsite.redis_conn).
_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {"URL": _REDIS_URL, "DEFAULT_TIMEOUT": 60},
    "lab": {"URL": _REDIS_URL, "DEFAULT_TIMEOUT": 60},
}
RQ = {"COMMIT_MODE": "auto"}
RQ_SHOW_ADMIN_LINK = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Production is the same code with different environment: behind an HTTPS proxy set DJANGO_HTTPS=1.
HTTPS = env_bool("DJANGO_HTTPS")
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# How many reverse proxies stand in front of the site: per-visitor limits key anonymous visitors to the
# client address, read from X-Forwarded-For behind this many proxies (0: REMOTE_ADDR itself).
TRUSTED_PROXIES = int(os.environ.get("DJANGO_TRUSTED_PROXIES", "0"))
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# No inline script or style anywhere: htmx is configured to match (allowEval off, no indicator styles).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = not HTTPS
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed files in production (after collectstatic); plain finders locally and in tests.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if HTTPS
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Log-in throttling (django-axes, database handler: no Redis needed). The axes backend only refuses a
# locked-out client; ModelBackend still checks the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lock an account at one address after 5 failures there, for 15 minutes after the last failure (a failure while
# locked extends it): account and address together, so a stranger's failures cannot lock the owner out (issue
# #25), and one address failing on many accounts meets prepsite.accounts' ceiling (4 x 5 per 15 minutes).
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Never reset on success: logging in to one's own account must not wipe an address's failures on others.
AXES_RESET_ON_SUCCESS = False
# The same client address every other limit uses (TRUSTED_PROXIES-aware, IPv6 by /64).
AXES_CLIENT_IP_CALLABLE = "prepsite.accounts.login_client_address"
AXES_LOCKOUT_CALLABLE = "prepsite.accounts.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # no table of every successful log-in: nothing reads it
# Study's `lab:` links and `preset:` fields name Lab presets; the project layer says where they are.
STUDY_LAB_PRESETS = "sandbox.engine.presets.PRESETS"
DRILLS_NEW_PER_DAY = int(os.environ.get("DRILLS_NEW_PER_DAY", "10"))

SITE_NAME = "Queue Prep"
# What /healthz checks besides the database: each app contributes its own (prepsite imports no app).
HEALTH_CHECKS = ["sandbox.ops.health.lab"]
# What Home shows for the visitor, from the apps: callables (request) -> template context.
HOME_CONTEXT = ["topics.drills.path_views.home_context"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"quiet_lab_jobs": {"()": "sandbox.ops.logs.QuietLabJobs"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["quiet_lab_jobs"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    # One line per Lab attempt (sandbox.ops.jobs), shown whatever LOG_LEVEL says about everything else.
    "loggers": {"sandbox.lab": {"level": "INFO"}},
}
