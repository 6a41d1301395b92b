"""Every answer under /api/ that is an error is JSON in one shape, {"detail", "errors"}, and the
OpenAPI schema says so: serializer errors, bodies Django refuses, server errors, the web import."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from rlhf_platform.errors import validation_error_body

pytestmark = pytest.mark.django_db


def test_a_serializer_error_names_the_fields_in_errors_and_says_them_in_detail(manager_api):
    response = manager_api.post("/api/projects/", {"description": "no name"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "name: This field is required.",
        "errors": {"name": "This field is required."},
    }


def test_the_token_endpoint_answers_in_the_same_shape():
    response = APIClient().post("/api/auth/token/", {}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"username", "password"}
    assert body["detail"].startswith("username: This field is required.")


def test_nested_errors_get_dotted_names_and_general_ones_go_to_detail():
    body = validation_error_body(
        {
            "non_field_errors": ["The two models must differ."],
            "answers": [{}, {"choice": ["Not a valid choice."]}],
            "settings": {"lr": ["A number is required.", "Must be positive."]},
        }
    )

    assert body == {
        "detail": "The two models must differ. answers.1.choice: Not a valid choice. "
        "settings.lr: A number is required. Must be positive.",
        "errors": {"answers.1.choice": "Not a valid choice.", "settings.lr": "A number is required. Must be positive."},
    }
    assert validation_error_body(["Pick one."]) == {"detail": "Pick one."}


def test_detail_names_a_few_fields_and_says_how_many_more():
    body = validation_error_body({f"f{i}": ["Bad."] for i in range(5)})

    assert body["detail"] == "f0: Bad. f1: Bad. f2: Bad. (2 more in errors)"
    assert len(body["errors"]) == 5


def test_a_json_body_over_two_and_a_half_mb_is_read_not_refused_with_an_html_page(manager_api):
    # Django's own in-memory cap (2.5 MB by default) answered an HTML "Bad Request (400)".
    response = manager_api.post("/api/projects/", {"name": "x" * 3_000_000}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["name"] == "Ensure this field has no more than 200 characters."


def test_a_body_over_djangos_cap_is_a_413_in_the_api_shape(manager_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2**20

    response = manager_api.post("/api/projects/", {"name": "x" * 2**21}, format="json")

    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request body is larger than this endpoint accepts (1 MB).",
        "errors": {"body": "Too large."},
    }


def test_too_many_form_fields_is_a_json_400(manager_api):
    fields = "&".join(f"f{i}=1" for i in range(1200))

    response = manager_api.post("/api/projects/", fields, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert "too many form fields" in response.json()["detail"]


@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG off", "DEBUG on"])
def test_a_server_error_under_the_api_is_json(manager, settings, monkeypatch, debug):
    settings.DEBUG = debug

    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr("labeling.api.selectors.datasets_overview", broken)
    client = Client(raise_request_exception=False)
    client.force_login(manager)

    response = client.get("/api/datasets/")

    assert response.status_code == 500
    assert response.json() == {"detail": "Server error. It has been logged."}


def test_a_page_keeps_its_html_error_page(manager_client):
    response = manager_client.get("/manage/campaigns/no-such-campaign/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_the_schema_documents_the_error_shape_on_every_operation(manager_api):
    schema = manager_api.get("/api/schema/", {"format": "json"}).json()
    error = "#/components/schemas/Error"
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"detail", "errors"}

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = set()
            if method in ("post", "put", "patch"):
                expected |= {"400", "413"}
            if path != "/api/auth/token/":
                expected |= {"401", "403"}
            if "{" in path:
                expected.add("404")
            for code in expected:
                content = responses.get(code, {}).get("content", {})
                assert content, f"{method.upper()} {path} does not document {code}"
                assert json.dumps(content).count(error), f"{method.upper()} {path} {code} is not an Error"
