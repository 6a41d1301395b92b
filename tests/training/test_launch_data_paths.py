"""Corpora named at launch: inside the data roots, readable to the end, or a 400 / field error now
(not a 500, not a round that fails later); and corpora uploaded from the launch page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from rlhf_platform.body_limits import MULTIPART_ALLOWANCE, body_limit_for
from tests.training.conftest import FAST_SETTINGS
from training.models import Round, TrainingRun

pytestmark = pytest.mark.django_db

TEXT = "".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog.\n\n" for i in range(30))


@pytest.fixture
def data_root(settings, tmp_path) -> Path:
    """The only data root; tmp_path/elsewhere is outside it."""
    root = tmp_path / "data-root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    settings.DATA_ROOTS = [root]
    return root


def launch_pretrain(client, path: str, **fields):
    request = {"preset": "single", "stage": "pretrain", "pretrain_dataset": path, "evaluate": False, **fields}
    return client.post("/api/training/rounds/", {"settings": FAST_SETTINGS, **request}, format="json")


def assert_refused(response, field: str, *words: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["errors"], body
    for word in words:
        assert word in body["detail"], body
    assert not Round.objects.exists() and not TrainingRun.objects.exists()


# --- damaged corpora -------------------------------------------------------------------------------


def broken_hf_directory(root: Path) -> Path:
    import datasets

    directory = root / "hf"
    datasets.Dataset.from_dict({"text": [TEXT] * 4}).save_to_disk(str(directory))
    arrow = next(directory.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:40])
    return directory


def hf_directory_without_its_data(root: Path) -> Path:
    directory = broken_hf_directory(root)
    next(directory.glob("*.arrow")).unlink()
    return directory


def bad_parquet(root: Path) -> Path:
    path = root / "corpus.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all")
    return path


def truncated_parquet(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / "cut.parquet"
    pq.write_table(pa.table({"text": [TEXT] * 50}), path)
    path.write_bytes(path.read_bytes()[:200])
    return path


def non_utf8_jsonl(root: Path) -> Path:
    path = root / "corpus.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    return path


def non_utf8_text(root: Path) -> Path:
    path = root / "corpus.txt"
    path.write_bytes(TEXT.encode() + b"\xff\xfe latin-1 \xe9\n")
    return path


def empty_text(root: Path) -> Path:
    path = root / "empty.txt"
    path.write_text("\n\n   \n")
    return path


def jsonl_with_a_number_for_text(root: Path) -> Path:
    path = root / "numbers.jsonl"
    path.write_text('{"text": "fine"}\n{"text": 42}\n')
    return path


def jsonl_of_arrays(root: Path) -> Path:
    path = root / "arrays.jsonl"
    path.write_text('["text"]\n')
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (broken_hf_directory, ["not a readable saved HF dataset"]),
        (hf_directory_without_its_data, ["not a readable saved HF dataset"]),
        (bad_parquet, ["corpus.parquet", "not a readable Parquet file"]),
        (truncated_parquet, ["cut.parquet", "not a readable Parquet file"]),
        (non_utf8_jsonl, ["corpus.jsonl line 2", "not UTF-8"]),
        (non_utf8_text, ["corpus.txt", "not UTF-8 text"]),
        (empty_text, ["empty.txt", "holds no text"]),
        (jsonl_with_a_number_for_text, ["numbers.jsonl line 2", "text must be a string"]),
        (jsonl_of_arrays, ["arrays.jsonl line 1", "must be a JSON object"]),
    ],
)
def test_a_damaged_pretraining_corpus_is_refused_at_launch(manager_api, tiny_model, tmp_path, make, words):
    response = launch_pretrain(manager_api, str(make(tmp_path)), base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", "pretrain_dataset:", *words)


def test_a_sound_corpus_of_each_format_launches(manager_api, tiny_model, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.txt").write_text(TEXT)
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": TEXT}) + "\n")
    pq.write_table(pa.table({"text": [TEXT]}), tmp_path / "c.parquet")
    datasets.Dataset.from_dict({"text": [TEXT]}).save_to_disk(str(tmp_path / "d"))
    for name in ("a.txt", "b.jsonl", "c.parquet", "d"):
        response = launch_pretrain(manager_api, str(tmp_path / name), base_model=tiny_model.pk)
        assert response.status_code == 201, response.json()
    assert Round.objects.count() == 4


def test_a_damaged_evaluation_corpus_is_refused_at_launch(manager_api, tiny_model, preference_snapshot, tmp_path):
    response = manager_api.post(
        "/api/training/rounds/",
        {
            "settings": FAST_SETTINGS,
            "preset": "sft_dpo",
            "base_model": tiny_model.pk,
            "dataset": preference_snapshot.pk,
            "evaluation_corpus": str(non_utf8_text(tmp_path)),
        },
        format="json",
    )
    assert_refused(response, "evaluation_corpus", "corpus.txt", "not UTF-8 text")


def test_a_damaged_corpus_is_refused_by_the_evaluation_api(manager_api, tiny_model, tmp_path):
    response = manager_api.post(
        "/api/training/evaluations/",
        {"model": tiny_model.pk, "evaluation_corpus": str(bad_parquet(tmp_path))},
        format="json",
    )
    assert_refused(response, "evaluation_corpus", "not a readable Parquet file")


def test_the_launch_page_shows_a_damaged_corpus_on_its_field(manager_client, tiny_model, tmp_path):
    response = manager_client.post(
        "/training/rounds/new/",
        {"preset": "single", "stage": "pretrain", "base_model": tiny_model.pk, "adapter": "full",
         "pretrain_dataset": str(bad_parquet(tmp_path))},
    )  # fmt: skip
    assert response.status_code == 200
    assert "not a readable Parquet file" in response.context["form"].errors["pretrain_dataset"][0]
    assert not Round.objects.exists()


# --- confinement -----------------------------------------------------------------------------------


def test_the_error_names_the_roots(manager_api, tiny_model, data_root, tmp_path):
    outside = tmp_path / "elsewhere" / "notes.txt"
    outside.write_text(TEXT)
    response = launch_pretrain(manager_api, str(outside), base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", f"must be inside one of: {data_root}")


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/hostname", "/proc/self/environ", "/"])
def test_server_files_are_never_read(manager_api, tiny_model, data_root, path):
    response = launch_pretrain(manager_api, path, base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", "must be inside one of")
    assert "root:" not in response.content.decode()


def test_the_keys_of_a_jsonl_file_outside_the_roots_are_not_echoed(manager_api, tiny_model, data_root, tmp_path):
    secret = tmp_path / "elsewhere" / "secrets.jsonl"
    secret.write_text(json.dumps({"aws_secret_access_key": "x", "db_password": "y"}) + "\n")
    response = launch_pretrain(manager_api, str(secret), base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", "must be inside one of")
    assert "aws_secret_access_key" not in response.content.decode()


def test_symlinks_and_dot_dot_are_resolved_first(manager_api, tiny_model, data_root, tmp_path):
    outside = tmp_path / "elsewhere" / "corpus.txt"
    outside.write_text(TEXT)
    (data_root / "link.txt").symlink_to(outside)
    assert_refused(
        launch_pretrain(manager_api, str(data_root / "link.txt"), base_model=tiny_model.pk), "pretrain_dataset"
    )
    sneaky = f"{data_root}/../elsewhere/corpus.txt"
    assert_refused(launch_pretrain(manager_api, sneaky, base_model=tiny_model.pk), "pretrain_dataset")


def test_a_link_inside_the_roots_is_stored_resolved(manager_api, tiny_model, data_root):
    (data_root / "corpora").mkdir()
    real = data_root / "corpora" / "real.txt"
    real.write_text(TEXT)
    (data_root / "link.txt").symlink_to(real)
    response = launch_pretrain(manager_api, f"{data_root}/corpora/../link.txt", base_model=tiny_model.pk)
    assert response.status_code == 201, response.json()
    assert TrainingRun.objects.get().text_dataset == str(real)


@pytest.mark.parametrize("path", ["~/corpus.txt", "~", "corpus.txt"])
def test_home_and_relative_paths_are_refused(manager_api, tiny_model, data_root, path):
    response = launch_pretrain(manager_api, path, base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", "absolute path")


def test_a_missing_file_inside_the_roots_says_so(manager_api, tiny_model, data_root):
    response = launch_pretrain(manager_api, str(data_root / "nope.txt"), base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", "does not exist")


def test_the_evaluation_api_confines_its_corpus_and_truthfulqa_file(manager_api, tiny_model, data_root):
    corpus = manager_api.post(
        "/api/training/evaluations/", {"model": tiny_model.pk, "evaluation_corpus": "/etc/passwd"}, format="json"
    )
    assert_refused(corpus, "evaluation_corpus", "must be inside one of")
    truthfulqa = manager_api.post(
        "/api/training/evaluations/",
        {
            "model": tiny_model.pk,
            "settings": {"advanced": {"benchmarks": ["truthfulqa_mc1"], "truthfulqa": "/etc/passwd"}},
        },
        format="json",
    )
    assert_refused(truthfulqa, "truthfulqa", "must be inside one of")


def test_a_rounds_truthfulqa_file_is_confined_too(manager_api, tiny_model, preference_snapshot, data_root):
    response = manager_api.post(
        "/api/training/rounds/",
        {
            "settings": FAST_SETTINGS,
            "preset": "sft_dpo",
            "base_model": tiny_model.pk,
            "dataset": preference_snapshot.pk,
            "stage_settings": {
                "evaluate": {"advanced": {"benchmarks": ["truthfulqa_mc1"], "truthfulqa": "/etc/passwd"}}
            },
        },
        format="json",
    )
    assert_refused(response, "truthfulqa", "must be inside one of")


def test_the_evaluation_page_confines_its_corpus(manager_client, tiny_model, data_root):
    response = manager_client.post(
        f"/training/models/{tiny_model.pk}/evaluate/", {"evaluation_corpus": "/etc/passwd", "max_new_tokens": 8}
    )
    assert response.status_code == 200
    assert "must be inside one of" in response.context["form"].errors["evaluation_corpus"][0]
    assert not Round.objects.exists()


# --- uploads from the launch page ------------------------------------------------------------------


def pretrain_form(tiny_model, **fields):
    return {"preset": "single", "stage": "pretrain", "base_model": tiny_model.pk, "adapter": "full",
            "max_steps": "2", **fields}  # fmt: skip


def uploads_left(settings) -> list[Path]:
    uploads = Path(settings.TRAINING_UPLOADS_DIR)
    return sorted(uploads.rglob("*")) if uploads.exists() else []


def test_a_manager_uploads_a_pretraining_corpus(manager_client, tiny_model, settings, data_root):
    upload = SimpleUploadedFile("my corpus.txt", TEXT.encode(), content_type="text/plain")
    response = manager_client.post("/training/rounds/new/", pretrain_form(tiny_model, pretrain_file=upload))
    assert response.status_code == 302, response.context["form"].errors
    stored = Path(TrainingRun.objects.get().text_dataset)
    assert stored.name == "my_corpus.txt" and stored.read_text() == TEXT
    assert stored.parent.parent == Path(settings.TRAINING_UPLOADS_DIR)
    assert Round.objects.get().pretrain_dataset == str(stored)


def test_the_launch_page_is_a_multipart_form_with_file_fields(manager_client):
    page = manager_client.get("/training/rounds/new/").content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file" name="pretrain_file"' in page and 'type="file" name="evaluation_file"' in page


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("latin1.txt", b"caf\xe9 au lait\n", "not UTF-8 text"),
        ("rows.jsonl", b'{"body": "no text"}\n', "needs columns {text}"),
        ("rows.jsonl", b'{"text": "ok"}\n{broken\n', "line 2: not valid JSON"),
        ("table.parquet", b"not parquet", "not a readable Parquet file"),
        ("table.csv", b"text\nhello\n", "a .txt, .jsonl or .parquet file"),
        ("empty.txt", b"", "is empty"),
    ],
)
def test_a_bad_upload_is_a_field_error_and_nothing_is_kept(manager_client, tiny_model, settings, name, content, words):
    upload = SimpleUploadedFile(name, content)
    response = manager_client.post("/training/rounds/new/", pretrain_form(tiny_model, pretrain_file=upload))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "pretrain_file" in errors, errors
    assert words in " ".join(errors["pretrain_file"] + errors.get("__all__", [])), errors
    page = response.content.decode()
    assert settings.TRAINING_UPLOADS_DIR.name not in page  # the upload is named as the manager named it
    assert not Round.objects.exists() and uploads_left(settings) == []


def test_an_upload_over_the_limit_is_refused(manager_client, tiny_model, settings):
    settings.LABELING_IMPORT_MAX_BYTES = 100
    upload = SimpleUploadedFile("big.txt", TEXT.encode())
    response = manager_client.post("/training/rounds/new/", pretrain_form(tiny_model, pretrain_file=upload))
    assert "at most" in " ".join(response.context["form"].errors["pretrain_file"])
    assert not Round.objects.exists() and uploads_left(settings) == []


def test_an_upload_is_removed_when_the_launch_is_refused_for_another_reason(manager_client, tiny_model, settings):
    upload = SimpleUploadedFile("corpus.txt", TEXT.encode())
    form = {**pretrain_form(tiny_model, pretrain_file=upload), "preset": "pretrain_sft"}  # SFT needs a snapshot
    response = manager_client.post("/training/rounds/new/", form)
    assert response.context["form"].errors["dataset"]
    assert not Round.objects.exists() and uploads_left(settings) == []


def test_a_path_and_an_upload_together_are_refused(manager_client, tiny_model, settings, tmp_path):
    (tmp_path / "c.txt").write_text(TEXT)
    upload = SimpleUploadedFile("corpus.txt", TEXT.encode())
    form = pretrain_form(tiny_model, pretrain_file=upload, pretrain_dataset=str(tmp_path / "c.txt"))
    response = manager_client.post("/training/rounds/new/", form)
    assert "not both" in " ".join(response.context["form"].errors["pretrain_file"])
    assert not Round.objects.exists() and uploads_left(settings) == []


def test_an_uploaded_name_cannot_leave_its_directory(manager_client, tiny_model, settings):
    upload = SimpleUploadedFile("../../../evil name.txt", TEXT.encode())
    response = manager_client.post("/training/rounds/new/", pretrain_form(tiny_model, pretrain_file=upload))
    assert response.status_code == 302
    stored = Path(TrainingRun.objects.get().text_dataset)
    assert stored.parent.parent == Path(settings.TRAINING_UPLOADS_DIR) and stored.name == "evil_name.txt"


def test_a_manager_uploads_an_evaluation_corpus(manager_client, tiny_model, preference_snapshot, settings):
    upload = SimpleUploadedFile(
        "held-out.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in TEXT.split("\n\n")).encode()
    )
    form = {"preset": "sft_dpo", "base_model": tiny_model.pk, "dataset": preference_snapshot.pk, "adapter": "full",
            "evaluate": "on", "evaluation_file": upload}  # fmt: skip
    response = manager_client.post("/training/rounds/new/", form)
    assert response.status_code == 302, response.context["form"].errors
    evaluate = TrainingRun.objects.get(stage="evaluate")
    assert Path(evaluate.text_dataset).parent.parent == Path(settings.TRAINING_UPLOADS_DIR)
    assert Round.objects.get().evaluation_corpus == evaluate.text_dataset


def test_the_launch_page_takes_an_upload_sized_body(settings):
    settings.LABELING_IMPORT_MAX_BYTES = 5 * 2**20
    assert body_limit_for("/training/rounds/new/") == 5 * 2**20 + MULTIPART_ALLOWANCE


def test_a_link_inside_a_corpus_directory_that_leads_out_is_refused(manager_api, tiny_model, data_root, tmp_path):
    corpus = data_root / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT)
    (corpus / "b.txt").symlink_to("/etc/hostname")
    response = launch_pretrain(manager_api, str(corpus), base_model=tiny_model.pk)
    assert_refused(response, "pretrain_dataset", "b.txt links outside the allowed directories")


def test_the_evaluation_page_takes_an_uploaded_corpus(manager_client, tiny_model, settings):
    url = f"/training/models/{tiny_model.pk}/evaluate/"
    page = manager_client.get(url).content.decode()
    assert 'enctype="multipart/form-data"' in page and 'type="file" name="evaluation_file"' in page
    bad = manager_client.post(url, {"max_new_tokens": 8, "evaluation_file": SimpleUploadedFile("c.txt", b"\xff\n")})
    assert "not UTF-8 text" in " ".join(bad.context["form"].errors["evaluation_file"])
    assert "c.txt" in bad.content.decode() and not Round.objects.exists() and uploads_left(settings) == []
    good = manager_client.post(
        url, {"max_new_tokens": 8, "evaluation_file": SimpleUploadedFile("c.txt", TEXT.encode())}
    )
    assert good.status_code == 302, good.context["form"].errors
    stored = Path(TrainingRun.objects.get().text_dataset)
    assert stored.parent.parent == Path(settings.TRAINING_UPLOADS_DIR) and stored.read_text() == TEXT
    assert body_limit_for(url) == settings.LABELING_IMPORT_MAX_BYTES + MULTIPART_ALLOWANCE
