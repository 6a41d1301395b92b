"""In a real Chromium: the launch form's learning-rate hint follows the chosen preset, stage and adapter."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_learning_rate_hint_follows_the_stage_and_adapter(manager, signed_in_page, live_server):
    page = signed_in_page(manager.username)
    page.goto(f"{live_server.url}/training/rounds/new/")
    field, help_text = page.locator("#id_learning_rate"), page.locator("#id_learning_rate_helptext")
    expect(field).to_have_attribute("placeholder", "2e-4 / 2e-4")  # SFT -> DPO with LoRA

    page.select_option("#id_adapter", "full")
    expect(field).to_have_attribute("placeholder", "2e-5 / 1e-6")
    expect(help_text).to_have_text("Blank: 2e-5 for SFT, 1e-6 for DPO (the defaults with full fine-tuning). "
                                   "A value here applies to every stage.")  # fmt: skip

    page.select_option("#id_preset", "single")
    page.select_option("#id_stage", "reward")
    expect(field).to_have_attribute("placeholder", "1e-4")
    page.select_option("#id_adapter", "ia3")
    expect(help_text).to_have_text("Blank: 1e-3, the default for the reward model with IA3.")
    assert page.js_errors == []
