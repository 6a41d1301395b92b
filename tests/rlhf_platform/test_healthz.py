from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client


@pytest.mark.django_db
def test_it_reports_ok_when_the_database_answers():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_reports_503_when_the_database_is_down():
    with mock.patch("rlhf_platform.selectors.connection.cursor", side_effect=OperationalError("down")):
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}


@pytest.mark.django_db
def test_it_answers_only_get():
    assert Client().post("/healthz").status_code == 405
