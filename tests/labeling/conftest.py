import pytest

from labeling.services import assignment as assignment_service
from labeling.services import judgements as judgement_service


@pytest.fixture
def step_by_step(monkeypatch):
    """Claim and submit in separate statements, as on SQLite, whatever the database."""
    for module in (assignment_service, judgement_service):
        monkeypatch.setattr(module, "writes_in_one_statement", lambda: False)
