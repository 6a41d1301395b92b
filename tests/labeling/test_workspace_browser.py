"""The reviewer workspace in a real Chromium: keyboard, drag and drop, safety, and never losing work."""

import time

import pytest
from playwright.sync_api import expect

from labeling.models import Assignment, AssignmentState, Judgement
from rlhf_platform.roles import Role
from tests.labeling.factories import PAIRWISE_SCHEMA, RANKING_SCHEMA, make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reviewer_user(make_user):
    return make_user("rita", role=Role.REVIEWER)


def ranking_campaign(manager, reviewer):
    return make_campaign(
        manager=manager,
        reviewers=[reviewer],
        schema=RANKING_SCHEMA,
        tasks=[{"prompt": "Rank these", "responses": ["one", "two", "three"]}],
    )


def open_workspace(page, live_server, campaign):
    page.goto(f"{live_server.url}/review/{campaign.slug}/")
    page.wait_for_selector(".response-card")
    return page


def shown_ids(page) -> list[int]:
    return [int(card.get_attribute("data-response-id")) for card in page.locator(".response-card").all()]


def wait_for_judgements(count: int) -> list[Judgement]:
    # The answer is saved in the background while the next task shows.
    for _ in range(100):
        judgements = list(Judgement.objects.order_by("pk"))
        if len(judgements) >= count:
            return judgements
        time.sleep(0.05)
    raise AssertionError(f"expected {count} judgements, found {Judgement.objects.count()}")


def test_it_completes_a_pairwise_task_with_the_keyboard_alone(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(3), overlap=1)
    page = signed_in_page("rita")
    page.click(f"text={campaign.name}")
    page.wait_for_selector(".response-card")
    first_prompt = page.locator("#ws-prompt").text_content()
    left_id = shown_ids(page)[0]

    page.keyboard.press("1")  # A much better
    expect(page.locator(".scale-option[aria-pressed=true]")).to_contain_text("A much better")
    page.keyboard.press("Control+Enter")

    expect(page.locator("#ws-prompt")).not_to_have_text(first_prompt)
    (judgement,) = wait_for_judgements(1)
    assert judgement.answers == {"preference": {"winner": left_id, "strength": 2, "both_bad": False}}
    assert judgement.reviewer == reviewer_user and judgement.time_spent_ms > 0
    expect(page.locator("#done-today")).to_have_text("1")

    page.keyboard.press("3")  # tie
    page.keyboard.press("b")  # both bad
    page.keyboard.press("Control+Enter")
    judgements = wait_for_judgements(2)
    assert judgements[1].answers["preference"] == {"winner": None, "strength": 0, "both_bad": True}
    assert page.js_errors == []


def test_it_asks_for_missing_answers_before_submitting(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(1))
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#ws-errors")).to_have_text("Some answers are missing.")
    expect(page.locator('[data-error-for="preference"]')).to_have_text("This question needs an answer.")
    assert Judgement.objects.count() == 0


def test_it_ranks_with_the_keyboard_alone(manager, reviewer_user, signed_in_page, live_server):
    campaign = ranking_campaign(manager, reviewer_user)
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    a, b, c = shown_ids(page)
    page.keyboard.press("Shift+ArrowDown")  # a goes below b: b, a, c
    page.keyboard.press("ArrowDown")  # select c
    page.keyboard.press("1")  # c to the top: c, b, a
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # select a (third)
    page.keyboard.press("=")  # tie a with b
    expect(page.locator(".response-card").nth(2)).to_contain_text("(tie)")
    page.keyboard.press("Control+Enter")
    (judgement,) = wait_for_judgements(1)
    assert judgement.answers == {"rank": {"order": [[c], [b, a]]}}


def test_it_ranks_with_drag_and_drop(manager, reviewer_user, signed_in_page, live_server):
    campaign = ranking_campaign(manager, reviewer_user)
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    a, b, c = shown_ids(page)
    page.locator(f'.response-card[data-response-id="{c}"]').drag_to(page.locator(".response-card").first)
    expect(page.locator(".response-card").first).to_have_attribute("data-response-id", str(c))
    page.locator("textarea[data-text=why]").fill("The third one is the clearest.")
    page.click("#btn-submit")
    (judgement,) = wait_for_judgements(1)
    assert judgement.answers["rank"] == {"order": [[c], [a], [b]]}
    assert judgement.answers["why"] == "The third one is the clearest."


def test_it_renders_model_text_inert(manager, reviewer_user, signed_in_page, live_server):
    hostile = [
        "Hello <script>window.__pwned = 'script'</script> world",
        '<img src="x" onerror="window.__pwned = \'img\'"> **bold** [link](javascript:window.__pwned=1)',
    ]
    campaign = make_campaign(
        manager=manager,
        reviewers=[reviewer_user],
        schema=PAIRWISE_SCHEMA,
        tasks=[{"prompt": "<b onmouseover=alert(1)>hi</b>", "responses": hostile}],
    )
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#ws-responses script, #ws-responses img, #ws-prompt b").count() == 0
    expect(page.locator("#ws-responses")).to_contain_text("<script>window.__pwned = 'script'</script>")
    expect(page.locator("#ws-responses strong")).to_have_text("bold")
    assert page.locator("#ws-responses a[href^=javascript]").count() == 0
    page.locator("#ws-responses").get_by_text("link").first.click()
    assert page.evaluate("window.__pwned") is None


def test_it_skips_with_a_reason_from_the_keyboard(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(2))
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    page.keyboard.press("s")
    expect(page.locator("#skip-dialog")).to_be_visible()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#ws-status")).to_have_text("Skipped.")
    skipped = Assignment.objects.get(state=AssignmentState.SKIPPED)
    assert skipped.skip_reason == "The prompt is unclear"


def test_it_undoes_the_last_answer_and_shows_it_again(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(3))
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    first_prompt = page.locator("#ws-prompt").text_content()
    page.keyboard.press("4")
    page.keyboard.press("Control+Enter")
    wait_for_judgements(1)
    expect(page.locator("#ws-prompt")).not_to_have_text(first_prompt)
    page.keyboard.press("u")
    expect(page.locator("#ws-prompt")).to_have_text(first_prompt)
    expect(page.locator(".scale-option[aria-pressed=true]")).to_contain_text("B better")
    assert Judgement.objects.get().retracted_at is not None


def test_it_keeps_a_draft_across_a_reload(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(3))
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    prompt = page.locator("#ws-prompt").text_content()
    page.keyboard.press("5")
    page.reload()
    page.wait_for_selector(".response-card")
    expect(page.locator("#ws-prompt")).to_have_text(prompt)
    expect(page.locator(".scale-option[aria-pressed=true]")).to_contain_text("B much better")


def test_it_shows_help_and_guidelines_from_the_keyboard(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(
        manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(1), guidelines="Prefer **correct** answers."
    )
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.keyboard.press("g")
    expect(page.locator("#guidelines strong")).to_have_text("correct")


def test_it_tells_the_reviewer_when_nothing_is_left(manager, reviewer_user, signed_in_page, live_server):
    campaign = make_campaign(manager=manager, reviewers=[reviewer_user], tasks=pairwise_rows(1))
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#ws-done")).to_be_visible()
    wait_for_judgements(1)


def test_it_needs_the_ranking_touched_or_kept_before_submitting(manager, reviewer_user, signed_in_page, live_server):
    campaign = ranking_campaign(manager, reviewer_user)
    page = open_workspace(signed_in_page("rita"), live_server, campaign)
    shown = shown_ids(page)
    page.keyboard.press("Control+Enter")
    expect(page.locator('[data-error-for="rank"]')).to_contain_text("Put the responses in order")
    page.keyboard.press("o")  # keep the order as shown
    page.reload()
    page.wait_for_selector(".response-card")
    expect(page.locator(".question-ranking .hint")).to_contain_text("Order recorded")
    page.keyboard.press("Control+Enter")
    (judgement,) = wait_for_judgements(1)
    assert judgement.answers["rank"] == {"order": [[i] for i in shown]}
