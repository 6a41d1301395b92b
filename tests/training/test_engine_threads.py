"""The engine's torch/OpenMP threads: by default half the cores the process may use, so a training
run leaves the other half to the web server and the database beside it."""

import os

from training.executors import engine_environment

PRINT_THREADS = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
django.setup()
from django.conf import settings
print(settings.TRAINING_ENGINE_THREADS)
"""


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def test_it_defaults_to_half_the_usable_cores_and_at_least_one(run_django):
    result = run_django(code=PRINT_THREADS, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == max(1, usable_cores() // 2)


def test_it_counts_only_the_cores_the_process_may_use(run_django):
    # Pinned to one core (as a container's cpuset would), half of it is still one thread.
    code = "import os; os.sched_setaffinity(0, {0})\n" + PRINT_THREADS
    result = run_django(code=code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 1


def test_it_takes_the_configured_count(run_django):
    result = run_django(code=PRINT_THREADS, DEBUG="1", TRAINING_ENGINE_THREADS="3")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 3


def test_zero_leaves_the_library_default(settings, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    settings.TRAINING_ENGINE_THREADS = 0
    assert "OMP_NUM_THREADS" not in engine_environment()


def test_the_engine_gets_the_count_in_its_environment(settings):
    settings.TRAINING_ENGINE_THREADS = 2
    environment = engine_environment()
    assert environment["OMP_NUM_THREADS"] == environment["MKL_NUM_THREADS"] == "2"
