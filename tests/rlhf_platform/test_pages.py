import pytest
from django.test import Client
from django.urls import reverse

from rlhf_platform.roles import Role


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_login():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_sends_a_manager_to_the_dashboard(manager_client):
    response = manager_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:manager-dashboard")
    page = manager_client.get(response["Location"])
    assert page.status_code == 200
    assert b"Dashboard" in page.content


def test_it_sends_a_reviewer_to_their_queue(reviewer_client):
    response = reviewer_client.get("/")
    assert response["Location"] == reverse("labeling:reviewer-queue")
    page = reviewer_client.get(response["Location"])
    assert page.status_code == 200
    assert b"Review queue" in page.content


def test_it_tells_a_user_without_a_role_to_ask_for_one(make_user):
    client = Client()
    client.force_login(make_user("nobody"))
    response = client.get("/")
    assert response.status_code == 403
    assert b"No role yet" in response.content


def test_it_keeps_reviewers_out_of_manager_pages(reviewer_client):
    response = reviewer_client.get(reverse("labeling:manager-dashboard"))
    assert response.status_code == 403
    assert b"This page is for managers." in response.content


def test_it_keeps_managers_out_of_the_reviewer_queue(manager_client):
    assert manager_client.get(reverse("labeling:reviewer-queue")).status_code == 403


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_of_role_pages_to_login():
    response = Client().get(reverse("labeling:manager-dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_it_renders_the_login_page_with_a_csrf_token():
    response = Client(enforce_csrf_checks=True).get(reverse("login"))
    assert response.status_code == 200
    assert b"Sign in" in response.content
    assert b"csrfmiddlewaretoken" in response.content


def test_it_signs_in_with_a_password_and_lands_on_the_role_page(make_user):
    make_user("rita", role=Role.REVIEWER, password="a long passphrase")
    client = Client()
    response = client.post(reverse("login"), {"username": "rita", "password": "a long passphrase"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("labeling:reviewer-queue")


def test_it_rejects_a_wrong_password_with_a_message(make_user):
    make_user("rita", role=Role.REVIEWER, password="a long passphrase")
    response = Client().post(reverse("login"), {"username": "rita", "password": "guess"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_it_refuses_a_login_post_without_csrf_token(make_user):
    make_user("rita", role=Role.REVIEWER, password="a long passphrase")
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "rita", "password": "a long passphrase"})
    assert response.status_code == 403


def test_it_signs_out_on_post(reviewer_client):
    response = reviewer_client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert reviewer_client.get("/").status_code == 302


def test_it_shows_each_role_its_own_navigation(manager_client, reviewer_client):
    manager_page = manager_client.get(reverse("labeling:manager-dashboard")).content.decode()
    reviewer_page = reviewer_client.get(reverse("labeling:reviewer-queue")).content.decode()
    assert reverse("api-docs") in manager_page
    assert reverse("api-docs") not in reviewer_page
    assert reverse("labeling:reviewer-queue") in reviewer_page


@pytest.mark.django_db
def test_signed_in_pages_are_not_stored_by_browsers_or_proxies(client, make_user):
    client.force_login(make_user("cache-manager", role=Role.MANAGER))
    for path in ("/manage/", "/training/", "/training/models/"):
        response = client.get(path)
        assert response.status_code == 200 and "no-store" in response["Cache-Control"], path
    client.force_login(make_user("cache-reviewer", role=Role.REVIEWER))
    assert "no-store" in client.get("/review/")["Cache-Control"]
