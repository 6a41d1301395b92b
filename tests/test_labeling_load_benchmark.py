"""The load benchmark's bookkeeping (not its timings): phases run in slices add up."""

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def labeling_load():
    spec = importlib.util.spec_from_file_location("labeling_load", REPO_ROOT / "benchmarks" / "labeling_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_slices_of_a_phase_add_up_to_one_phase(labeling_load):
    phase = labeling_load.Phase
    first = phase("combined", 32, elapsed_s=1.0, completed=300, machine_cpu_busy=0.9, loadgen_cores=0.2)
    first.latencies_ms = {"submit": [10.0, 20.0]}
    first.process_cores, first.busiest_children = {"server": 1.0}, {"server": [0.6, 0.4]}
    first.errors["submit 409"] = 1
    second = phase("combined", 32, elapsed_s=3.0, completed=900, machine_cpu_busy=0.5, loadgen_cores=0.1)
    second.latencies_ms = {"submit": [30.0], "next": [5.0]}
    second.process_cores, second.busiest_children = {"server": 2.0}, {"server": [1.2, 0.8]}
    second.errors["submit 409"] = 2

    whole = phase.merged([first, second])
    assert (whole.elapsed_s, whole.completed, whole.rate) == (4.0, 1200, 300.0)
    assert whole.latencies_ms == {"submit": [10.0, 20.0, 30.0], "next": [5.0]}
    assert whole.errors == {"submit 409": 3}
    # CPU shares are weighted by each slice's time.
    assert whole.machine_cpu_busy == pytest.approx(0.6)
    assert whole.loadgen_cores == pytest.approx(0.125)
    assert whole.process_cores == {"server": pytest.approx(1.75)}
    assert whole.busiest_children["server"] == [pytest.approx(1.05), pytest.approx(0.7)]
