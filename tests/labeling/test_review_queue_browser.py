"""The review queue in a real Chromium: campaign cards with no list bullets beside them, the tasks
left for the reviewer on each, and campaigns with nothing left for them out of the cards."""

import pytest

from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_queue_shows_cards_with_what_is_left_and_no_bullets(manager, make_user, signed_in_page, tmp_path):
    reviewer = make_user("rita", role=Role.REVIEWER)
    other = make_user("otto", role=Role.REVIEWER)
    make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(12), overlap=1, name="Helpfulness")
    make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(1), overlap=1, name="Safety")
    taken = make_campaign(manager=manager, reviewers=[reviewer, other], tasks=pairwise_rows(1), overlap=1, name="Tone")
    claim_next(reviewer=other, campaign=taken)

    page = signed_in_page("rita")
    page.wait_for_selector(".campaign-cards")
    cards = page.locator(".campaign-cards > li")
    lines = [[line for line in text.splitlines() if line.strip()] for text in cards.all_inner_texts()]
    assert lines == [
        ["Helpfulness", "Assistant quality", "12 tasks left for you"],
        ["Safety", "Assistant quality", "1 task left for you"],
    ]
    # No bullet: none drawn, and nothing of a card sticks out to its left.
    marker = page.evaluate("getComputedStyle(document.querySelector('.campaign-cards > li')).listStyleType")
    assert marker == "none"
    list_left = page.locator(".campaign-cards").bounding_box()["x"]
    assert all(card.bounding_box()["x"] >= list_left for card in cards.all())
    assert "Nothing left for you in Tone." in page.locator(".queue-finished").inner_text()
    page.screenshot(path=str(tmp_path / "review-queue.png"), full_page=True)
    assert page.js_errors == []
