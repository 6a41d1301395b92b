"""Settings are read from the environment at start-up; each case runs a fresh interpreter."""

import json
import stat

PRINT_SETTINGS = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "debug": settings.DEBUG,
    "secret_key": settings.SECRET_KEY,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "db_engine": db["ENGINE"], "db_name": str(db["NAME"]), "db_host": db.get("HOST"),
    "db_port": db.get("PORT"), "db_user": db.get("USER"), "db_test_name": db.get("TEST", {}).get("NAME"),
    "channel_layer": settings.CHANNEL_LAYERS["default"],
    "hf_hub_offline_env": os.environ.get("HF_HUB_OFFLINE"),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "hsts_seconds": settings.SECURE_HSTS_SECONDS,
}))
"""


def load_settings(run_django, **env):
    result = run_django(code=PRINT_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_requires_a_secret_key_when_debug_is_off(run_django):
    result = run_django(code=PRINT_SETTINGS)
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_it_generates_a_private_dev_key_once_in_debug(run_django, tmp_path):
    first = load_settings(run_django, DEBUG="1")
    second = load_settings(run_django, DEBUG="1")
    key_file = tmp_path / "var" / "dev_secret_key"
    assert first["secret_key"] == second["secret_key"] == key_file.read_text()
    assert len(first["secret_key"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_it_uses_the_given_secret_key(run_django, tmp_path):
    loaded = load_settings(run_django, SECRET_KEY="s" * 60)
    assert loaded["secret_key"] == "s" * 60
    assert loaded["debug"] is False
    assert not (tmp_path / "var" / "dev_secret_key").exists()


def test_it_defaults_to_sqlite_under_var(run_django, tmp_path):
    loaded = load_settings(run_django, DEBUG="1")
    assert loaded["db_engine"] == "django.db.backends.sqlite3"
    assert loaded["db_name"] == str(tmp_path / "var" / "db.sqlite3")


def test_it_reads_a_postgres_database_url(run_django):
    loaded = load_settings(run_django, DEBUG="1", DATABASE_URL="postgres://rlhf:pw@db.internal:5433/feedback")
    # Django's backend with statements sized to the parameter limit of server-side parameters.
    assert loaded["db_engine"] == "rlhf_platform.postgresql"
    assert (loaded["db_host"], loaded["db_port"], loaded["db_user"]) == ("db.internal", 5433, "rlhf")
    assert loaded["db_name"] == "feedback"
    assert loaded["db_test_name"] == "test_feedback"


def test_without_prepared_statements_it_uses_djangos_own_backend(run_django):
    url = "postgres://rlhf:pw@db.internal:5433/feedback"
    loaded = load_settings(run_django, DEBUG="1", DATABASE_URL=url, DATABASE_PREPARED_STATEMENTS="0")
    assert loaded["db_engine"] == "django.db.backends.postgresql"


def test_it_rejects_an_unsupported_database(run_django):
    result = run_django(code=PRINT_SETTINGS, DEBUG="1", DATABASE_URL="mysql://u:p@localhost/db")
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL or SQLite" in result.stderr


def test_it_rejects_a_malformed_database_url(run_django):
    result = run_django(code=PRINT_SETTINGS, DEBUG="1", DATABASE_URL="nonsense")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_it_switches_the_channel_layer_to_redis(run_django):
    assert load_settings(run_django, DEBUG="1")["channel_layer"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    loaded = load_settings(run_django, DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/2")
    assert loaded["channel_layer"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert loaded["channel_layer"]["CONFIG"]["hosts"][0]["address"] == "redis://127.0.0.1:6379/2"


PRINT_REDIS_TIMEOUTS = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from channels.layers import get_channel_layer
layer = get_channel_layer()
connection = layer.create_pool(0).make_connection()  # not connected: no Redis needed
print(json.dumps({"socket_timeout": connection.socket_timeout, "blocking_pop": layer.brpop_timeout}))
"""


def test_a_redis_read_outlasts_the_channel_layers_blocking_pop(run_django):
    """redis-py 8 reads with a 5 s timeout by default while channels-redis blocks 5 s on Redis for a
    quiet socket's next message: every idle websocket dropped (django/channels_redis#422)."""
    result = run_django(code=PRINT_REDIS_TIMEOUTS, DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/2")
    assert result.returncode == 0, result.stderr
    timeouts = json.loads(result.stdout)
    assert timeouts["socket_timeout"] is not None
    assert timeouts["socket_timeout"] >= timeouts["blocking_pop"] + 5


PRINT_LIVE_POLL = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from django.conf import settings
print(settings.TRAINING_LIVE_POLL_SECONDS)
"""


def test_live_pages_read_the_database_often_without_redis_and_rarely_with_it(run_django):
    def poll_seconds(**env: str) -> float:
        result = run_django(code=PRINT_LIVE_POLL, DEBUG="1", **env)
        assert result.returncode == 0, result.stderr
        return float(result.stdout)

    assert poll_seconds() == 1.0
    assert poll_seconds(REDIS_URL="redis://127.0.0.1:6379/2") == 20.0
    assert poll_seconds(REDIS_URL="redis://127.0.0.1:6379/2", TRAINING_LIVE_POLL_SECONDS="5") == 5.0


def test_it_keeps_the_hub_offline_by_default(run_django):
    assert load_settings(run_django, DEBUG="1")["hf_hub_offline_env"] == "1"


def test_it_reads_allowed_hosts(run_django):
    loaded = load_settings(run_django, DEBUG="1", ALLOWED_HOSTS="rlhf.example.com, .internal")
    assert loaded["allowed_hosts"] == ["rlhf.example.com", ".internal"]


def test_it_names_a_bad_boolean(run_django):
    result = run_django(code=PRINT_SETTINGS, DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_it_secures_cookies_when_debug_is_off(run_django):
    assert load_settings(run_django, SECRET_KEY="k" * 60)["session_cookie_secure"] is True
    assert load_settings(run_django, DEBUG="1")["session_cookie_secure"] is False


PRODUCTION_ENVIRONMENT = {
    "DEBUG": "0",
    "SECRET_KEY": "pr0duction-" + "x7Qz9!kL2#mN4$pR6^tV8&wY0*" * 2,
    "ALLOWED_HOSTS": "rlhf.example.com",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def test_it_passes_the_deployment_checklist_with_production_values(run_django):
    result = run_django("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENVIRONMENT)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_fails_the_deployment_checklist_in_debug(run_django):
    result = run_django("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION_ENVIRONMENT, "DEBUG": "1"})
    assert result.returncode != 0
    assert "security.W018" in result.stderr
