"""Live pages across processes, as the README's production recipe serves them: two uvicorn
processes sharing a real Redis channel layer and a file-backed database, the database poll set
long (300 s) so only group messages can bring news, and a separate process standing in for the
worker (it calls the services the worker calls). In Chromium, a run page's chart and log follow
a point pushed through the group.

Needs Redis at TEST_REDIS_URL (not REDIS_URL, which would move the whole suite onto Redis). CI sets
REQUIRE_REDIS=1 so these fail there instead of skipping when Redis is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import free_port, serving

# What the live pages' read of the database would otherwise deliver within the test.
POLL_SECONDS = "300"
QUIET_SECONDS = 60

SET_UP = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from rlhf_platform.roles import Role
from training.models import ModelArtifact, Round, Stage, TrainingRun

manager, _ = get_user_model().objects.get_or_create(username="mia-manager")
manager.groups.add(Group.objects.get_or_create(name=Role.MANAGER)[0])
session = SessionStore()
session[SESSION_KEY] = str(manager.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = manager.get_session_auth_hash()
session.create()
base, _ = ModelArtifact.objects.get_or_create(name="tiny-base", defaults={"path": os.environ["VAR_DIR"]})
round_ = Round.objects.create(name="Round", preset=Round.Preset.SFT_DPO, base_model=base)
run = TrainingRun.objects.create(round=round_, position=0, stage=Stage.SFT, input_model=base)
print(json.dumps({"session": session.session_key, "round_id": round_.pk, "run_id": run.pk}))
"""

# The worker's part, in a process of its own: claim, progress, a metric point, the log, the end.
WORKER_STAND_IN = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from training.models import RunMetric, TrainingRun
from training.services.jobs import job_claim_next, job_heartbeat, job_record_progress
from training.services.runs import run_fail, run_record_event

run = job_claim_next(model=TrainingRun, worker="stand-in")
job_record_progress(job=run, event={"event": "progress", "step": 1, "total_steps": 4, "eta_s": 3.0})
run_record_event(run=run, event={"event": "metrics", "step": 1, "loss": 2.5})
job_heartbeat(job=run, log_tail="step 1 loss 2.5\\n")
run_fail(run=run, error="The stand-in worker stops here.", log_tail="step 1 loss 2.5\\n")
print(json.dumps({"run_id": run.pk, "point_id": RunMetric.objects.get(run=run).pk}))
"""


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "")
    problem = None
    if not url:
        problem = "TEST_REDIS_URL is not set"
    else:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        except redis.RedisError as error:
            problem = f"Redis at TEST_REDIS_URL ({url}) does not answer: {error}"
    if problem is not None:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"REQUIRE_REDIS=1 but {problem} (apt-get install redis-server, then start it)")
        pytest.skip(problem)
    return url


@dataclass
class Stack:
    environment: dict[str, str]
    urls: list[str]

    def python(self, code: str, *args: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=REPO_ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def socket(self, base_url: str, path: str, session: str) -> ClientConnection:
        # No client pings, as a browser sends none: only the application keeps the socket alive.
        return connect(
            base_url.replace("http", "ws", 1) + path,
            origin=base_url,
            additional_headers={"Cookie": f"sessionid={session}"},
            ping_interval=None,
            open_timeout=30,
        )


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory) -> Iterator[Stack]:
    """Two uvicorn processes on one SQLite file and one Redis; yields their URLs."""
    var_dir = tmp_path_factory.mktemp("live-redis")
    environment = clean_environment(
        DEBUG="1", VAR_DIR=str(var_dir / "var"), REDIS_URL=redis_url, TRAINING_LIVE_POLL_SECONDS=POLL_SECONDS
    )
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(migrate, cwd=REPO_ROOT, env=environment, check=True, capture_output=True, timeout=300)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def uvicorn(port: int) -> list[str]:
        application = "rlhf_platform.asgi:application"
        return [
            sys.executable,
            "-m",
            "uvicorn",
            application,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ]

    with (
        serving(
            [uvicorn(ports[0])], environment=environment, log_path=var_dir / "a.log", ready_url=f"{urls[0]}/healthz"
        ),
        serving(
            [uvicorn(ports[1])], environment=environment, log_path=var_dir / "b.log", ready_url=f"{urls[1]}/healthz"
        ),
    ):
        yield Stack(environment, urls)


def receive_until(socket: ClientConnection, done, seconds: float = 15) -> list[dict]:
    """Messages until ``done(messages)`` holds; fails after ``seconds``."""
    messages: list[dict] = []
    deadline = time.monotonic() + seconds
    while not done(messages):
        left = deadline - time.monotonic()
        assert left > 0, f"still waiting after {seconds} s; got {messages}"
        messages.append(json.loads(socket.recv(timeout=left)))
    return messages


def runs_of(messages: list[dict]) -> list[dict]:
    return [run for message in messages if message["type"] == "runs" for run in message["runs"]]


def points_of(messages: list[dict]) -> list[dict]:
    return [point for message in messages if message["type"] == "points" for point in message["points"]]


def test_idle_sockets_stay_open_and_both_processes_get_what_another_process_stored(stack):
    ids = stack.python(SET_UP)
    run_page = stack.socket(stack.urls[0], f"/ws/training/runs/{ids['run_id']}/", ids["session"])
    round_page = stack.socket(stack.urls[1], f"/ws/training/rounds/{ids['round_id']}/", ids["session"])
    with run_page, round_page:
        for socket in (run_page, round_page):
            assert runs_of(receive_until(socket, runs_of))[0]["status"] == "queued"
        round_state = receive_until(round_page, lambda messages: any(m["type"] == "round" for m in messages))

        # A quiet spell: redis-py 8's 5 s read timeout used to kill each of these within seconds.
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            run_page.recv(timeout=QUIET_SECONDS)
        with pytest.raises(TimeoutError):
            round_page.recv(timeout=1)
        assert time.monotonic() - started >= QUIET_SECONDS

        stored = stack.python(WORKER_STAND_IN)
        assert stored["run_id"] == ids["run_id"]

        def complete(messages: list[dict]) -> bool:
            return (
                any(run["status"] == "failed" for run in runs_of(messages))
                and bool(points_of(messages))
                and any(m["type"] == "log" for m in messages)
            )

        for socket in (run_page, round_page):
            messages = receive_until(socket, complete)
            statuses = [run["status"] for run in runs_of(messages)]
            assert statuses[0] == "running" and statuses[-1] == "failed"
            assert any(run["step"] == 1 and run["total_steps"] == 4 for run in runs_of(messages))
            assert points_of(messages) == [
                {"id": stored["point_id"], "run_id": ids["run_id"], "kind": "train", "step": 1, "values": {"loss": 2.5}}
            ]
            assert [m["text"] for m in messages if m["type"] == "log"] == ["step 1 loss 2.5\n"]
        # The round's own status moved on too (running, then failed with its run), by message.
        rounds = [m["round"]["status"] for m in messages if m["type"] == "round"]
        assert rounds and rounds[-1] != round_state[-1]["round"]["status"]


# Claims the run (argument "claim"), or stores one more metric point and log line on it as the
# worker does mid-run (argument "point", then the run's id).
WORKER_POINT = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from training.models import TrainingRun
from training.services.jobs import job_claim_next, job_heartbeat
from training.services.runs import run_record_event

if sys.argv[1] == "claim":
    run = job_claim_next(model=TrainingRun, worker="stand-in")
else:
    run = TrainingRun.objects.get(pk=int(sys.argv[2]))
    run_record_event(run=run, event={"event": "metrics", "step": 7, "loss": 0.75})
    job_heartbeat(job=run, log_tail="step 7 <b>loss</b> 0.75\\n")
print("{}")
"""


def test_a_run_pages_chart_and_log_follow_a_point_pushed_through_the_group(stack, browser_page):
    ids = stack.python(SET_UP)
    stack.python(WORKER_POINT, "claim")
    base_url = stack.urls[1]
    browser_page.context.add_cookies([{"name": "sessionid", "value": ids["session"], "url": base_url}])
    browser_page.goto(f"{base_url}/training/runs/{ids['run_id']}/")
    browser_page.wait_for_selector("[data-connection]:has-text('Live:')", timeout=15000)
    assert browser_page.locator("svg[aria-label='loss by step']").count() == 0

    stack.python(WORKER_POINT, "point", str(ids["run_id"]))
    # The database poll is 300 s away: only the group message can bring these.
    browser_page.wait_for_selector("svg[aria-label='loss by step']", timeout=10000)
    log = browser_page.locator(f"[data-log-tail='{ids['run_id']}']")
    log.wait_for(state="visible", timeout=10000)
    assert log.inner_text().strip() == "step 7 <b>loss</b> 0.75"  # shown as text, never as markup
    assert browser_page.js_errors == []
