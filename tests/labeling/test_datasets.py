"""Preference dataset snapshots: build from real judgements, filters, hashing, and every export format."""

import json
import re
import uuid

import datasets as hf_datasets
import pyarrow.parquet as pq
import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command

from labeling.datasets import BuildParams, DatasetError
from labeling.errors import LabelingError
from labeling.models import PreferenceDataset
from labeling.services.datasets import dataset_build, dataset_export
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role
from tests.labeling.factories import RANKING_SCHEMA, claim_next, make_campaign, run_data_jobs

SCHEMA = {
    "questions": [
        {"id": "preference", "type": "pairwise", "allow_both_bad": True},
        {"id": "flags", "type": "flags"},
    ]
}


@pytest.fixture(autouse=True)
def datasets_dir(settings, tmp_path):
    settings.DATASETS_DIR = tmp_path / "datasets"


@pytest.fixture
def reviewers(make_user):
    return [make_user(f"r{i}", role=Role.REVIEWER) for i in range(3)]


def review(reviewer, campaign, choose, **extra):
    """The reviewer answers every task left for them; ``choose(task, responses)`` returns the winner's text."""
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        texts = dict(assignment.task.responses.values_list("pk", "text"))
        winner_text = choose(assignment.task, texts)
        winner = next((pk for pk, text in texts.items() if text == winner_text), None)
        answers = {"preference": {"winner": winner, "strength": 2 if winner else 0}}
        answers.update(extra.get("answers", lambda texts: {})(texts))
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers=answers,
            client_submission_id=str(uuid.uuid4()),
            time_spent_ms=1000,
        )


def good_first(task, texts):
    return next(t for t in texts.values() if t.startswith("good"))


@pytest.fixture
def campaign(manager, reviewers):
    rows = [{"id": f"p{i}", "prompt": f"Question {i}", "responses": [f"bad {i}", f"good {i}"]} for i in range(6)]
    campaign = make_campaign(manager=manager, reviewers=reviewers, schema=SCHEMA, tasks=rows, overlap=3)
    for reviewer in reviewers[:2]:
        review(reviewer, campaign, good_first)
    review(reviewers[2], campaign, lambda task, texts: next(t for t in texts.values() if t.startswith("bad")))
    return campaign


def read(dataset):
    return [json.loads(line) for line in dataset.path.read_text().splitlines()]


def test_it_builds_trl_rows_from_the_majority_of_reviewers(campaign, manager):
    dataset, created = dataset_build(campaigns=[campaign], params=BuildParams(method="majority"), created_by=manager)
    assert created
    rows = read(dataset)
    assert len(rows) == 6 == dataset.counts["pairs"] and dataset.counts["prompts"] == 6
    row = rows[0]
    assert row["prompt"] == "Question 0" and row["chosen"] == "good 0" and row["rejected"] == "bad 0"
    assert (row["n_votes"], row["agreement"], row["group_id"], row["split"]) == (3, pytest.approx(2 / 3), "p0", "train")
    assert row["margin"] > 0 and row["confidence"] == pytest.approx(2 / 3)
    assert set(row) >= {"chosen_model", "rejected_model", "task_id", "margin", "confidence", "n_votes", "agreement"}
    assert dataset.parameters["method"] == "majority" and list(dataset.campaigns.all()) == [campaign]


def test_it_finds_the_same_snapshot_for_the_same_inputs(campaign, manager):
    first, _ = dataset_build(campaigns=[campaign], params=BuildParams(), created_by=manager)
    again, created = dataset_build(campaigns=[campaign], params=BuildParams(), created_by=manager)
    assert not created and again.pk == first.pk
    other, created = dataset_build(campaigns=[campaign], params=BuildParams(min_votes=2), created_by=manager)
    assert created and other.content_hash != first.content_hash


def test_it_filters_by_agreement_and_says_why(campaign, manager):
    with pytest.raises(LabelingError, match=r"Every pair was filtered out \(6 low agreement\)"):
        dataset_build(
            campaigns=[campaign], params=BuildParams(method="majority", min_agreement=0.9), created_by=manager
        )
    assert PreferenceDataset.objects.count() == 0


def test_it_leaves_out_excluded_reviewers(campaign, manager, reviewers):
    params = BuildParams(method="majority", exclude_reviewers=(reviewers[2].pk,))
    dataset, _ = dataset_build(campaigns=[campaign], params=params, created_by=manager)
    assert {row["agreement"] for row in read(dataset)} == {1.0}
    assert {row["n_votes"] for row in read(dataset)} == {2}


def test_it_drops_pairs_with_flagged_responses_unless_asked(manager, reviewers):
    rows = [{"id": "x", "prompt": "Q", "responses": ["bad", "good"]}]
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], schema=SCHEMA, tasks=rows, overlap=1)

    def flag_bad(texts):
        bad = next(pk for pk, text in texts.items() if text == "bad")
        return {"flags": {str(bad): ["unsafe"]}}

    review(reviewers[0], campaign, good_first, answers=flag_bad)
    with pytest.raises(LabelingError, match="1 flagged response"):
        dataset_build(campaigns=[campaign], params=BuildParams(), created_by=manager)
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(drop_flagged=False), created_by=manager)
    assert dataset.counts["pairs"] == 1


def test_it_keeps_ties_with_margin_zero_when_asked(manager, reviewers):
    rows = [{"id": "t", "prompt": "Q", "responses": ["one", "two"]}]
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], schema=SCHEMA, tasks=rows, overlap=1)
    review(reviewers[0], campaign, lambda task, texts: None)
    with pytest.raises(LabelingError, match="1 tie"):
        dataset_build(campaigns=[campaign], params=BuildParams(), created_by=manager)
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(ties="keep"), created_by=manager)
    (row,) = read(dataset)
    assert row["tie"] is True and row["margin"] == 0.0


def test_it_expands_rankings_and_uses_the_conversational_form(manager, reviewers):
    rows = [{"id": "chat", "prompt": [{"role": "user", "content": "Hi"}], "responses": ["best", "mid", "worst"]}]
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], schema=RANKING_SCHEMA, tasks=rows, overlap=1)
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    by_text = {text: pk for pk, text in assignment.task.responses.values_list("pk", "text")}
    judgement_submit(
        reviewer=reviewers[0],
        assignment_id=assignment.pk,
        answers={"rank": {"order": [[by_text["best"]], [by_text["mid"]], [by_text["worst"]]]}},
        client_submission_id="ranking-submission",
        time_spent_ms=500,
    )
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(method="weighted"), created_by=manager)
    pairs = {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in read(dataset)}
    assert pairs == {("best", "mid"), ("best", "worst"), ("mid", "worst")}
    assert read(dataset)[0]["prompt"] == [{"role": "user", "content": "Hi"}]
    assert read(dataset)[0]["chosen"][0]["role"] == "assistant"


def test_it_splits_by_prompt_deterministically(campaign, manager):
    params = BuildParams(test_fraction=0.5, seed=3)
    dataset, _ = dataset_build(campaigns=[campaign], params=params, created_by=manager)
    splits = {row["group_id"]: row["split"] for row in read(dataset)}
    assert set(splits.values()) == {"train", "test"}
    assert dataset.counts["splits"] == {s: list(splits.values()).count(s) for s in ("train", "test")}


def test_it_refuses_to_build_from_nothing(manager):
    empty = make_campaign(manager=manager, schema=SCHEMA)
    with pytest.raises(LabelingError, match="no judgements"):
        dataset_build(campaigns=[empty], params=BuildParams(), created_by=manager)
    with pytest.raises(LabelingError, match="at least one campaign"):
        dataset_build(campaigns=[], params=BuildParams(), created_by=manager)


def test_it_names_bad_parameters():
    with pytest.raises(DatasetError) as caught:
        BuildParams(method="vibes", min_confidence=0.2, test_fraction=1.0)
    assert set(caught.value.errors) == {"method", "min_confidence", "test_fraction"}


def test_it_exports_jsonl_parquet_and_hf(campaign, manager, tmp_path):
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(test_fraction=0.5, seed=3), created_by=manager)
    jsonl = dataset_export(dataset=dataset, file_format="jsonl", out=tmp_path / "out.jsonl")
    assert jsonl.read_text() == dataset.path.read_text()
    parquet = dataset_export(dataset=dataset, file_format="parquet", out=tmp_path / "out.parquet", split="train")
    table = pq.read_table(parquet)
    assert table.num_rows == dataset.counts["splits"]["train"]
    assert {"prompt", "chosen", "rejected", "margin"} <= set(table.column_names)
    hf = dataset_export(dataset=dataset, file_format="hf", out=tmp_path / "hf")
    loaded = hf_datasets.load_from_disk(str(hf))
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].num_rows + loaded["test"].num_rows == dataset.counts["pairs"]
    assert loaded["train"][0]["chosen"].startswith("good")
    with pytest.raises(LabelingError, match="already exists"):
        dataset_export(dataset=dataset, file_format="jsonl", out=jsonl)


def test_it_builds_and_exports_from_the_command_line(campaign, manager, tmp_path, capsys):
    manager.is_superuser = True
    manager.save(update_fields=["is_superuser"])
    call_command("build_dataset", "--campaign", campaign.slug, "--method", "weighted")
    assert "6 rows from 6 prompts" in capsys.readouterr().out
    dataset = PreferenceDataset.objects.get()
    call_command("export_dataset", str(dataset.pk), "--format", "hf", "--out", str(tmp_path / "hf"))
    assert hf_datasets.load_from_disk(str(tmp_path / "hf"))["train"].num_rows == 6
    with pytest.raises(CommandError, match="No campaign with slug nope"):
        call_command("build_dataset", "--campaign", "nope")
    with pytest.raises(CommandError, match="min_agreement"):
        call_command("build_dataset", "--campaign", campaign.slug, "--min-agreement", "2")


def test_it_builds_lists_and_downloads_through_the_api(campaign, manager, reviewers, tmp_path):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(manager)
    bad = api.post("/api/datasets/", {"campaigns": [campaign.pk], "min_confidence": 0.1}, format="json")
    assert bad.status_code == 400 and "min_confidence" in bad.json()["errors"]
    queued = api.post("/api/datasets/", {"campaigns": [campaign.pk], "method": "majority"}, format="json")
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert queued["Location"] == queued.json()["url"] == f"/api/data-jobs/{queued.json()['id']}/"
    assert not PreferenceDataset.objects.exists()
    run_data_jobs()
    job = api.get(queued["Location"]).json()
    assert job["status"] == "succeeded" and job["result"]["created"] is True
    built = api.get(f"/api/datasets/{job['dataset']}/")
    assert built.json()["counts"]["pairs"] == 6
    again = api.post("/api/datasets/", {"campaigns": [campaign.pk], "method": "majority"}, format="json")
    run_data_jobs()
    again_job = api.get(again["Location"]).json()
    assert again_job["dataset"] == job["dataset"] and again_job["result"]["created"] is False
    assert [d["id"] for d in api.get("/api/datasets/").json()["results"]] == [built.json()["id"]]

    url = f"/api/datasets/{built.json()['id']}/download/"
    jsonl = api.get(url, {"file_format": "jsonl"})
    assert jsonl.status_code == 200 and jsonl["Content-Disposition"].startswith("attachment")
    assert len(b"".join(jsonl.streaming_content).splitlines()) == 6
    zipped = api.get(url, {"file_format": "hf"})
    archive = tmp_path / "hf.zip"
    archive.write_bytes(b"".join(zipped.streaming_content))
    import shutil

    shutil.unpack_archive(archive, tmp_path / "hf")
    # A build holds 10% of the prompts out unless told otherwise: the HF export keeps them apart.
    splits = built.json()["counts"]["splits"]
    assert splits.get("test", 0) >= 1 and splits["train"] + splits["test"] == 6
    exported = hf_datasets.load_from_disk(str(tmp_path / "hf"))
    assert (exported["train"].num_rows, exported["test"].num_rows) == (splits["train"], splits["test"])
    assert api.get(url, {"file_format": "csv"}).status_code == 400

    reviewer_api = APIClient()
    reviewer_api.force_authenticate(reviewers[0])
    assert reviewer_api.get("/api/datasets/").status_code == 403
    assert reviewer_api.get(url).status_code == 403


def test_it_builds_from_the_manager_page_and_shows_the_snapshot(campaign, manager, reviewers):
    from django.test import Client

    client = Client()
    client.force_login(manager)
    page = client.get("/manage/datasets/")
    assert page.status_code == 200 and b"No dataset yet" in page.content
    form = {
        "campaigns": [campaign.pk], "kind": "preference", "method": "majority", "min_votes": 1, "min_agreement": 0.0,
        "min_confidence": 0.5, "ties": "drop", "drop_flagged": "on", "drop_both_bad": "on",
        "test_fraction": 0.0, "seed": 0,
    }  # fmt: skip
    refused = client.post("/manage/datasets/", {**form, "min_agreement": 0.95})
    assert refused.status_code == 302
    run_data_jobs()
    assert b"Every pair was filtered out" in client.get(refused["Location"]).content
    queued = client.post("/manage/datasets/", form)
    job_page = queued["Location"]
    assert re.fullmatch(r"/manage/jobs/\d+/", job_page)
    assert b"Waiting for the worker" in client.get(job_page).content
    run_data_jobs()
    dataset = PreferenceDataset.objects.get()
    done = client.get(job_page).content.decode()
    assert "Dataset built." in done and f'href="/manage/datasets/{dataset.pk}/"' in done
    built = client.get(f"/manage/datasets/{dataset.pk}/")
    assert b"good 0" in built.content and b"file_format=parquet" in built.content
    # The preview's numbers read as people write them (0.83, not 0.8333333333333334).
    shown = re.findall(rb"(margin|confidence|agreement) (\S+)", built.content)
    assert shown and all(re.fullmatch(rb"-?\d+\.\d\d", value) for _, value in shown), shown
    reviewer = Client()
    reviewer.force_login(reviewers[0])
    assert reviewer.get("/manage/datasets/").status_code == 403
    assert reviewer.get(f"/manage/datasets/{dataset.pk}/").status_code == 403
    assert reviewer.get(job_page).status_code == 403
    assert reviewer.post("/manage/datasets/", form).status_code == 403


def test_it_shows_quality_with_charts_and_flags(campaign, manager, reviewers):
    from django.test import Client

    client = Client()
    client.force_login(manager)
    page = client.get(f"/manage/campaigns/{campaign.slug}/quality/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Krippendorff's alpha, outcome" in html and "Pairwise percent agreement" in html
    assert "<polyline" in html  # agreement over time
    for reviewer in reviewers:
        assert reviewer.username in html
    reviewer_client = Client()
    reviewer_client.force_login(reviewers[0])
    assert reviewer_client.get(f"/manage/campaigns/{campaign.slug}/quality/").status_code == 403


def test_it_leaves_flagged_reviewers_out_of_a_build_when_asked(campaign, manager, reviewers, monkeypatch):
    from django.test import Client

    monkeypatch.setattr("labeling.selectors.flagged_reviewer_ids", lambda campaigns: [reviewers[2].pk])
    client = Client()
    client.force_login(manager)
    form = {
        "campaigns": [campaign.pk], "kind": "preference", "method": "majority", "min_votes": 1, "min_agreement": 0.0,
        "min_confidence": 0.5, "ties": "drop", "test_fraction": 0.0, "seed": 0, "exclude_flagged_reviewers": "on",
    }  # fmt: skip
    client.post("/manage/datasets/", form)
    run_data_jobs()
    dataset = PreferenceDataset.objects.get()
    assert dataset.parameters["exclude_reviewers"] == [reviewers[2].pk]
    assert {row["n_votes"] for row in read(dataset)} == {2}


def test_it_shows_an_empty_quality_page_before_any_judgement(manager):
    from django.test import Client

    campaign = make_campaign(manager=manager, schema=SCHEMA)
    client = Client()
    client.force_login(manager)
    assert b"No comparative judgements yet" in client.get(f"/manage/campaigns/{campaign.slug}/quality/").content


def test_it_exports_data_dpo_trainer_trains_on(campaign, manager, tmp_path):
    """Round trip: snapshot -> HF dataset directory -> load_from_disk -> a few DPOTrainer steps."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from tests.tiny_model import build_tiny_causal_lm

    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(), created_by=manager)
    hf = dataset_export(dataset=dataset, file_format="hf", out=tmp_path / "hf")
    train = hf_datasets.load_from_disk(str(hf))["train"]

    model_dir = build_tiny_causal_lm(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    changed = [name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())]
    assert changed, "DPO training changed no parameter"
    assert any("loss" in entry for entry in trainer.state.log_history)


def test_it_reports_quality_through_the_api(campaign, manager, reviewers):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(manager)
    body = api.get(f"/api/campaigns/{campaign.pk}/quality/").json()
    assert body["agreement"]["percent"]["n_items"] == 6 and body["agreement"]["percent"]["n_votes"] == 18
    assert body["agreement"]["percent"]["value"] == pytest.approx(1 / 3)
    assert sorted(row["reviewer"] for row in body["reviewers"]) == ["r0", "r1", "r2"]
    assert body["ranking"] is None
    reviewer_api = APIClient()
    reviewer_api.force_authenticate(reviewers[0])
    assert reviewer_api.get(f"/api/campaigns/{campaign.pk}/quality/").status_code == 403


def test_it_exports_raw_judgements_with_pseudonymous_reviewers(campaign, manager, reviewers, tmp_path):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(manager)
    response = api.get(f"/api/campaigns/{campaign.pk}/judgements.jsonl")
    assert response.status_code == 200
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(rows) == 18
    pseudonyms = {row["reviewer"] for row in rows}
    assert len(pseudonyms) == 3 and all(p.startswith("r-") for p in pseudonyms)
    text = json.dumps(rows)
    assert all(reviewer.username not in text for reviewer in reviewers)
    assert set(rows[0]) >= {"answers", "shown_order", "time_spent_ms", "submitted_at", "retracted_at"}

    call_command("export_judgements", "--campaign", campaign.slug, "--out", str(tmp_path / "raw.jsonl"))
    assert len((tmp_path / "raw.jsonl").read_text().splitlines()) == 18
    reviewer_api = APIClient()
    reviewer_api.force_authenticate(reviewers[0])
    assert reviewer_api.get(f"/api/campaigns/{campaign.pk}/judgements.jsonl").status_code == 403


def test_it_builds_sft_rows_from_rewrites_and_winning_responses(manager, reviewers):
    schema = {"questions": [{"id": "preference", "type": "pairwise"}, {"id": "fix", "type": "rewrite"}]}
    rows = [{"id": f"s{i}", "prompt": f"Q{i}", "responses": [f"bad {i}", f"good {i}"]} for i in range(2)]
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], schema=schema, tasks=rows, overlap=1)

    def rewrite_good(texts):
        good = next(pk for pk, text in texts.items() if text.startswith("good"))
        return {"fix": {"response": good, "text": f"even better than {texts[good]}"}}

    review(reviewers[0], campaign, good_first, answers=rewrite_good)
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(kind="sft"), created_by=manager)
    built = read(dataset)
    assert dataset.kind == "sft" and dataset.file_name.startswith("sft-")
    assert sorted((r["source"], r["completion"]) for r in built) == [
        ("best", "good 0"), ("best", "good 1"), ("rewrite", "even better than good 0"), ("rewrite", "even better than good 1"),
    ]  # fmt: skip
    only_rewrites, _ = dataset_build(
        campaigns=[campaign], params=BuildParams(kind="sft", sft_sources=("rewrites",)), created_by=manager
    )
    assert {r["source"] for r in read(only_rewrites)} == {"rewrite"}


def test_it_builds_kto_rows_and_leaves_out_mixed_records(manager, reviewers):
    rows = [{"id": "k", "prompt": "Q", "responses": ["a", "b", "c"]}]
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], schema=RANKING_SCHEMA, tasks=rows, overlap=1)
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    ids = {text: pk for pk, text in assignment.task.responses.values_list("pk", "text")}
    judgement_submit(
        reviewer=reviewers[0],
        assignment_id=assignment.pk,
        answers={"rank": {"order": [[ids["a"]], [ids["b"]], [ids["c"]]]}},
        client_submission_id="kto-submission",
        time_spent_ms=500,
    )
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(kind="kto"), created_by=manager)
    # "b" beat "c" but lost to "a": a mixed record, left out.
    assert sorted((r["completion"], r["label"]) for r in read(dataset)) == [("a", True), ("c", False)]


def test_it_exports_conversational_rows_to_parquet_and_refuses_an_empty_split(manager, reviewers, tmp_path):
    rows = [{"id": "chat", "prompt": [{"role": "user", "content": "Hi"}], "responses": ["best", "worst"]}]
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], schema=SCHEMA, tasks=rows, overlap=1)
    review(reviewers[0], campaign, lambda task, texts: "best")
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(), created_by=manager)
    table = pq.read_table(dataset_export(dataset=dataset, file_format="parquet", out=tmp_path / "chat.parquet"))
    assert table.to_pylist()[0]["chosen"] == [{"role": "assistant", "content": "best"}]
    assert table.to_pylist()[0]["prompt"] == [{"role": "user", "content": "Hi"}]
    with pytest.raises(LabelingError, match="no rows in that split"):
        dataset_export(dataset=dataset, file_format="parquet", out=tmp_path / "test.parquet", split="test")
    assert not (tmp_path / "test.parquet").exists()


def test_a_new_snapshot_is_audited_once(campaign, manager):
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(method="majority"), created_by=manager)
    dataset_build(campaigns=[campaign], params=BuildParams(method="majority"), created_by=manager)  # the same one

    [entry] = LogEntry.objects.filter(additional_data__action="dataset.build")
    assert (entry.actor, entry.object_id) == (manager, dataset.pk)
    assert entry.additional_data["counts"]["pairs"] == 6
    assert entry.additional_data["campaigns"] == [campaign.pk]
