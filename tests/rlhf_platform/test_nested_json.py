"""JSON nested deeper than anything the platform stores is refused as "nested too deeply": a 400 from
the API (the token endpoint included), a line error from an import, a field error from a form; never
a 500 from Python's recursion limit."""

from __future__ import annotations

import json

import pytest

from labeling.services.imports import ImportRejected
from rlhf_platform.json_limits import MAX_JSON_DEPTH, loads, nesting_depth
from rlhf_platform.roles import Role
from tests.labeling.factories import import_rows, make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_is_counted_without_recursion():
    assert nesting_depth(json.loads(nested(MAX_JSON_DEPTH))) == MAX_JSON_DEPTH
    assert nesting_depth({"a": [1, {"b": 2}]}) == 3 and nesting_depth("text") == 0
    assert loads(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(nested(100_000))  # Python's own parser stops with RecursionError at about 1,000 levels


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
def test_the_token_endpoint_answers_400(client, depth):
    body = '{"username": ' + nested(depth) + "}"
    response = client.post("/api/auth/token/", body, content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_a_submit_whose_answers_nest_5000_deep_answers_400(api_client, make_user):
    api_client.force_authenticate(make_user("deep-reviewer", role=Role.REVIEWER))
    body = '{"answers": {"preference": ' + nested(5_000) + '}, "client_submission_id": "x"}'
    response = api_client.post("/api/assignments/1/submit/", body, content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_an_import_line_with_deeply_nested_meta_is_a_line_error(manager):
    campaign = make_campaign(manager=manager)
    rows = [*pairwise_rows(2), '{"prompt": "Q", "responses": ["a", "b"], "meta": ' + nested(5_000) + "}"]
    with pytest.raises(ImportRejected) as caught:
        import_rows(campaign, rows)
    assert caught.value.row_errors == [
        (3, f"is not accepted: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    ]
    assert not campaign.tasks.exists()  # all or nothing


def test_a_form_field_of_json_answers_with_a_field_error(client, manager):
    client.force_login(manager)
    response = client.post("/training/rounds/new/", {"preset": "sft_dpo", "advanced": nested(3_000)})
    assert response.status_code == 200
    assert "nested too deeply" in " ".join(response.context["form"].errors.get("advanced", []))
