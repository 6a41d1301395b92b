"""Defaults that train: the learning rate follows the stage and the adapter method, and the pages say which."""

import json
import re

import pytest

from training.formatting import format_learning_rate
from training.models import Round
from training.specs import build_spec, stage_learning_rate


def hints_on(page: str) -> dict:
    found = re.search(r'<script id="learning-rate-hints" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def learning_rate_input(page: str) -> str:
    return re.search(r'<input [^>]*id="id_learning_rate"[^>]*>', page).group(0)


@pytest.mark.parametrize(
    ("launch_settings", "expected"),
    [
        ({"adapter": "lora"}, 2e-4),
        ({"adapter": "full"}, 1e-6),
        ({"adapter": "freeze"}, 1e-6),
        ({"adapter": "ia3"}, 2e-4),
        ({"adapter": "full", "advanced": {"adapter": {"method": "lora"}}}, 2e-4),  # advanced wins, as in the engine
        ({"adapter": "lora", "learning_rate": 3e-4}, 3e-4),
        ({"adapter": "lora", "advanced": {"learning_rate": 5e-5}}, 5e-5),
    ],
)
def test_a_dpo_spec_names_the_learning_rate_it_trains_with(launch_settings, expected):
    spec = build_spec(stage="dpo", settings=launch_settings, model="m", output_dir="out", wiring={"dataset": "d.jsonl"})
    assert spec["learning_rate"] == expected
    assert stage_learning_rate("dpo", launch_settings) == expected


def test_learning_rates_read_as_people_write_them():
    assert [format_learning_rate(v) for v in (1e-5, 2e-4, 2.5e-5, 1e-3, 0.05)] == [
        "1e-5",
        "2e-4",
        "2.5e-5",
        "1e-3",
        "0.05",
    ]


def test_the_launch_form_shows_the_default_each_stage_will_use(manager_client):
    page = manager_client.get("/training/rounds/new/").content.decode()
    # The form opens on SFT -> DPO with LoRA.
    assert 'placeholder="2e-4 / 2e-4"' in learning_rate_input(page)
    assert "Blank: 2e-4 for SFT, 2e-4 for DPO (the defaults with LoRA)." in page
    hints = hints_on(page)
    assert hints["sft_dpo"][""]["full"]["placeholder"] == "2e-5 / 1e-6"
    assert hints["sft_reward_ppo"][""]["lora"]["placeholder"] == "2e-4 / 1e-3 / 3e-5"
    assert hints["single"]["dpo"]["ia3"]["help"] == "Blank: 2e-4, the default for DPO with IA3."
    assert hints["single"]["dpo"]["freeze"]["placeholder"] == "1e-6"
    assert "1e-6 full or freeze, 2e-4 lora, qlora, ia3 or bottleneck" in page  # the engine defaults table (DPO)


def test_a_form_shown_again_keeps_the_hint_for_what_was_chosen(manager_client, db):
    form = {"preset": "single", "stage": "dpo", "adapter": "full", "advanced": ""}
    page = manager_client.post("/training/rounds/new/", form).content.decode()
    assert "This field is required." in page  # no dataset: the form comes back
    assert 'placeholder="1e-6"' in learning_rate_input(page)
    assert "Blank: 1e-6, the default for DPO with full fine-tuning." in page


def test_the_run_page_shows_the_learning_rate_the_run_trains_with(manager_client, tiny_model, tmp_path):
    text = tmp_path / "domain.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n" * 20)
    form = {"preset": "single", "stage": "pretrain", "base_model": tiny_model.pk, "pretrain_dataset": str(text)}
    for adapter, learning_rate, shown in (("full", "", "2e-5"), ("lora", "", "2e-4"), ("lora", "0.001", "1e-3")):
        response = manager_client.post(
            "/training/rounds/new/", {**form, "adapter": adapter, "learning_rate": learning_rate}
        )
        assert response.status_code == 302, response.content.decode()[-2000:]
        run = Round.objects.latest("id").runs.get()
        page = manager_client.get(f"/training/runs/{run.pk}/").content.decode()
        assert f'learning rate <span class="num">{shown}</span>' in page
