"""schemathesis against the OpenAPI schema: every operation, as a reviewer and as a manager, never a 5xx.

The schema is the one ``/api/schema/`` serves (checked below), and requests go to the WSGI
application in this process, so they share the test's database transaction: each runs in a
savepoint rolled back after it, and nothing outlives the test. Ids in paths and in bodies are
mostly those of the real objects of ``tests/rlhf_platform/world.py``, so requests reach the
services instead of stopping at a 404 or a "no such object". Generation is derandomized and
bounded (``MAX_EXAMPLES`` per operation and phase): CI runs the same cases every time.

The worker does not run in tests: a round or generation job the fuzzer launches stays queued.
Files the app writes (snapshots, run directories) go to a temporary directory, and Hypothesis
keeps its caches under VAR_DIR.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error

from rlhf_platform.wsgi import application
from tests.rlhf_platform.world import INSIDER, MANAGER, build_world

# Cases per operation in each generating phase (schemathesis adds its boundary-value cases).
MAX_EXAMPLES = 15
# Body fields that name an object, and the URL parameter whose real id they take.
ID_FIELDS = {
    "base_model": "model_id",
    "reward_model": "model_id",
    "model": "model_id",
    "compare_with": "model_id",
    "dataset": "dataset_id",
    "project": "project_id",
    "source_campaign": "campaign_id",
    "campaigns": "campaign_id",
    "team": "team_id",
}
# The world's ids by URL parameter name while a test runs (read by use_real_ids).
REAL_IDS: dict[str, int] = {}

# Hypothesis keeps caches (and would keep examples) in ./.hypothesis: under VAR_DIR like every file
# the suite writes.
set_hypothesis_home_dir(django_settings.VAR_DIR / "hypothesis")


def generated_schema() -> dict:
    """What ``/api/schema/`` serves, generated without a request: the live one needs a signed-in
    caller, and tests are collected before any database exists."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(generated_schema())
schema.app = application
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)


def _real(value: object, parameter: str) -> object:
    """Most generated ids become the world's real one; those that are 1 modulo 4 stay (and test the 404s)."""
    if isinstance(value, bool) or parameter not in REAL_IDS:
        return value
    is_id = isinstance(value, int) or (isinstance(value, str) and value.isdigit())
    return type(value)(REAL_IDS[parameter]) if is_id and int(value) % 4 != 1 else value


def use_real_ids(case) -> None:
    """Real ids in the path and the body. Done on the case before the call rather than in a
    schemathesis hook, because the boundary-value (coverage) cases do not go through the hooks."""
    if case.path_parameters:
        case.path_parameters = {name: _real(value, name) for name, value in case.path_parameters.items()}
    if isinstance(case.body, dict):
        body = dict(case.body)
        for field in ID_FIELDS.keys() & body.keys():
            value, parameter = body[field], ID_FIELDS[field]
            body[field] = [_real(v, parameter) for v in value] if isinstance(value, list) else _real(value, parameter)
        case.body = body


@pytest.fixture
def world(db, settings, tmp_path, in_test_transaction):
    REAL_IDS.clear()
    settings.DATASETS_DIR = tmp_path / "datasets"
    settings.TRAINING_DIR = tmp_path / "training"
    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "model").mkdir()
    built = build_world(tmp_path / "model")
    REAL_IDS.update(built.url_kwargs())
    return built


@pytest.fixture
def in_test_transaction():
    """Requests keep the test's database connection, as Django's test client does: the WSGI handler
    otherwise closes a connection that is inside a transaction at the start and end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call_and_check(case, token: str) -> None:
    """One case, in a savepoint rolled back after it: a case that deletes the campaign leaves it
    there for the next one, and no case depends on the order they run in. A 500's traceback is in
    the test's captured log (``django.request``)."""
    use_real_ids(case)
    with transaction.atomic():
        response = case.call(headers={"Authorization": f"Token {token}"})
        transaction.set_rollback(True)
    case.validate_response(response, checks=[not_a_server_error])


# The health checks would fail on what is meant here: a function-scoped fixture (the world, built
# once per operation), and large nested bodies (stage settings). No deadline: requests are timed
# by CI's clock, not by Hypothesis on a loaded machine. No example database: the cases are the
# same every run (deterministic), so there is nothing to replay.
FUZZ_SETTINGS = settings(suppress_health_check=list(HealthCheck), deadline=None, database=None)


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_error_as_a_reviewer(case, world):
    call_and_check(case, world.tokens[INSIDER])


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_error_as_a_manager(case, world):
    call_and_check(case, world.tokens[MANAGER])


@pytest.mark.django_db
def test_the_fuzzed_schema_is_the_served_one(client, world):
    client.force_login(world.users[MANAGER])
    assert client.get("/api/schema/?format=json").json() == generated_schema()
