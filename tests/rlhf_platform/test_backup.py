"""`manage.py backup` and `manage.py restore`: a real round trip, on the database the suite runs on.

The source is the suite's own database, with judgements, a snapshot and registered models made
through the services. The archive is restored by the real command, in a fresh process, into a
fresh VAR_DIR and a fresh database (a scratch PostgreSQL database on the PostgreSQL pass), and
that instance is then asked what it holds and made to serve a snapshot download.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from labeling.datasets import BuildParams
from labeling.models import Judgement, PreferenceDataset, Task
from labeling.services.datasets import dataset_build
from rlhf_platform.roles import Role
from tests.conftest import REPO_ROOT, clean_environment
from tests.labeling.factories import make_campaign
from tests.tiny_model import build_tiny_causal_lm
from tests.training.conftest import review_all
from training.services.registry import model_register

# What the restored instance reports about itself, as JSON on stdout.
INSPECT = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from labeling.models import Judgement, PreferenceDataset, Task
from training.models import ModelArtifact
dataset = PreferenceDataset.objects.get()
client = Client()
client.force_login(get_user_model().objects.get(username="mia-manager"))
download = client.get(f"/api/datasets/{dataset.pk}/download/")
print(json.dumps({
    "tasks": Task.objects.count(),
    "judgements": Judgement.objects.count(),
    "dataset_hash": dataset.content_hash,
    "dataset_path": str(dataset.path),
    "download_status": download.status_code,
    "download": b"".join(download.streaming_content).decode() if download.status_code == 200 else "",
    "models": {m.name: m.path for m in ModelArtifact.objects.all()},
}))
"""


@pytest.fixture
def source_var(settings, tmp_path) -> Path:
    """The suite's instance, with its files in a VAR_DIR of its own (and caches that are not backed up)."""
    var = tmp_path / "source-var"
    settings.VAR_DIR = var
    settings.DATASETS_DIR = var / "datasets"
    settings.TRAINING_DIR = var / "training"
    settings.MEDIA_ROOT = var / "media"
    settings.STATIC_ROOT = var / "static"
    settings.BENCHMARK_DATA_DIR = var / "benchmark-data"
    settings.MODEL_ROOTS = [var / "models"]
    settings.DATA_ROOTS = [var / "data"]
    for cache in ("static/app.css", "benchmark-data/arc/rows.arrow", "downloads/wheel.whl"):
        (var / cache).parent.mkdir(parents=True)
        (var / cache).write_text("cache")
    (var / "training" / "runs" / "1").mkdir(parents=True)
    (var / "training" / "runs" / "1" / "spec.json").write_text('{"stage": "sft"}')
    (var / "dev_secret_key").write_text("dev-key")
    return var


@pytest.fixture
def fresh_instance(tmp_path):
    """Environment of a new, empty instance (its VAR_DIR and database), for the real commands."""
    created: list[str] = []

    def make(name: str) -> dict[str, str]:
        var = tmp_path / name
        environment = {
            "VAR_DIR": str(var),
            "SECRET_KEY": "restored-instance-secret",
            "ALLOWED_HOSTS": "testserver",
            "SECURE_SSL_REDIRECT": "0",
            "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
        }
        if connection.vendor == "sqlite":
            environment["DATABASE_URL"] = f"sqlite:///{var / 'db.sqlite3'}"
        else:
            database = connection.settings_dict
            # Named after the suite's own test database, so that suites of other checkouts on the
            # same server (each with its own test database) never meet it.
            scratch = f"{database['NAME']}_restore_{name.replace('-', '_')}"
            _postgres_admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)', f'CREATE DATABASE "{scratch}"')
            created.append(scratch)
            environment["DATABASE_URL"] = (
                f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{scratch}"
            )
        return environment

    yield make
    for scratch in created:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def _admin_parameters() -> dict[str, str]:
    database = connection.settings_dict
    return {
        "host": database["HOST"],
        "port": database["PORT"],
        "user": database["USER"],
        "password": database["PASSWORD"],
        "dbname": "postgres",
    }


def _postgres_admin(*statements: str) -> None:
    with psycopg.connect(**_admin_parameters(), autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)


def manage(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=clean_environment(**environment),
        capture_output=True,
        text=True,
        timeout=300,
    )


def inspect(environment: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", INSPECT],
        cwd=REPO_ROOT,
        env=clean_environment(**environment),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_a_backup_restores_into_a_fresh_instance_that_serves_it(
    source_var, fresh_instance, manager, make_user, tmp_path
):
    reviewers = [make_user(f"reviewer-{i}", role=Role.REVIEWER) for i in range(2)]
    rows = [{"id": f"q{i}", "prompt": f"Question {i}?", "responses": [f"bad {i}", f"good {i}"]} for i in range(6)]
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=rows, overlap=2)
    for reviewer in reviewers:
        review_all(reviewer, campaign)
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(method="majority"), created_by=manager)
    inside = build_tiny_causal_lm(source_var / "models" / "tiny")
    model_register(path=str(inside), name="tiny-inside", created_by=manager)
    outside = shutil.copytree(inside, tmp_path / "elsewhere" / "tiny")
    # Outside the model roots, as an operator registers with `manage.py register_model`.
    model_register(path=str(outside), name="tiny-outside", created_by=manager, confined=False)
    archive = tmp_path / "backups" / "instance.tar.gz"
    archive.parent.mkdir()

    out, err = io.StringIO(), io.StringIO()
    call_command("backup", str(archive), stdout=out, stderr=err)

    assert "Wrote" in out.getvalue()
    assert f"tiny-outside lies outside VAR_DIR, at {outside}" in err.getvalue()
    assert [p.name for p in archive.parent.iterdir()] == ["instance.tar.gz"]
    with tarfile.open(archive) as opened:
        names = set(opened.getnames())
        manifest = json.load(opened.extractfile("manifest.json"))
    assert "var/static/app.css" not in names and "var/benchmark-data/arc/rows.arrow" not in names
    assert not any(name.startswith("var/downloads/") for name in names)
    assert {f"var/datasets/{dataset.file_name}", "var/models/tiny/model.safetensors", "var/dev_secret_key"} <= names
    assert manifest["database"]["vendor"] == connection.vendor
    assert manifest["migrations"]["labeling"].startswith("00")
    assert {entry["path"] for entry in manifest["files"]} == names - {"backup.json", "manifest.json"}
    assert [m["name"] for m in manifest["external_models"]] == ["tiny-outside"]

    target = fresh_instance("restored")
    restored = manage(target, "restore", str(archive))

    assert restored.returncode == 0, restored.stderr
    assert "Dataset snapshots: 1 match their content hash." in restored.stdout
    assert f"{outside} (present)" in restored.stderr
    facts = inspect(target)
    restored_var = Path(target["VAR_DIR"])
    assert facts["tasks"] == Task.objects.count() == 6
    assert facts["judgements"] == Judgement.objects.count() > 0
    assert facts["dataset_hash"] == PreferenceDataset.objects.get().content_hash
    assert facts["download_status"] == 200
    assert facts["download"] == dataset.path.read_text()
    assert facts["dataset_path"] == str(restored_var / "datasets" / dataset.file_name)
    # Models under VAR_DIR follow it to its new place; one registered from elsewhere keeps its path.
    assert facts["models"] == {"tiny-inside": str(restored_var / "models" / "tiny"), "tiny-outside": str(outside)}
    for weights in inside.iterdir():
        assert (restored_var / "models" / "tiny" / weights.name).read_bytes() == weights.read_bytes()
    assert (restored_var / "training" / "runs" / "1" / "spec.json").read_text() == '{"stage": "sft"}'
    assert not (restored_var / "static").exists()
    assert manage(target, "check").returncode == 0

    # A snapshot changed together with its line in the manifest passes the archive's checks, but
    # not the snapshot's own content hash: the restore says which one.
    def change_snapshot(info, data):
        if info.name == snapshot_member:
            data = data.replace(b"good", b"fine")
        elif info.name == "manifest.json":
            manifest = json.loads(data)
            for entry in manifest["files"]:
                if entry["path"] == snapshot_member:
                    entry["size"] = len(changed)
                    entry["sha256"] = hashlib.sha256(changed).hexdigest()
            data = json.dumps(manifest).encode()
        return info, data

    snapshot_member = f"var/datasets/{dataset.file_name}"
    changed = dataset.path.read_bytes().replace(b"good", b"fine")
    doctored = rewrite(archive, tmp_path / "doctored.tar", change_snapshot)
    damaged = manage(fresh_instance("doctored"), "restore", str(doctored))
    assert damaged.returncode != 0
    assert f"{dataset.pk} {dataset.name} ({dataset.file_name}): content hash mismatch" in damaged.stderr

    again = manage(target, "restore", str(archive))
    assert again.returncode != 0
    assert "The database is not empty" in again.stderr and "--force" in again.stderr
    forced = manage(target, "restore", "--force", str(archive))
    assert forced.returncode == 0, forced.stderr
    assert inspect(target)["judgements"] == facts["judgements"]


@pytest.fixture
def small_archive(db, source_var, tmp_path) -> Path:
    (source_var / "datasets").mkdir()
    (source_var / "datasets" / "preference-abc.jsonl").write_text('{"prompt": "p", "chosen": "a"}\n' * 50)
    archive = tmp_path / "small.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    return archive


def rewrite(archive: Path, out: Path, change) -> Path:
    """A copy of ``archive`` with each member passed through ``change(info, data) -> (info, data)``."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for info in source.getmembers():
            data = source.extractfile(info).read()
            info, data = change(info, data)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out


def assert_nothing_restored(environment: dict[str, str]) -> None:
    var = Path(environment["VAR_DIR"])
    leftovers = [p for p in var.rglob("*") if p.is_file() and p.name not in ("db.sqlite3", "dev_secret_key")]
    assert leftovers == []
    if connection.vendor == "sqlite":
        with sqlite3.connect(var / "db.sqlite3") as database:
            assert database.execute("SELECT name FROM sqlite_master").fetchall() == []
    else:
        name = environment["DATABASE_URL"].rsplit("/", 1)[1]
        with psycopg.connect(**{**_admin_parameters(), "dbname": name}) as database:
            tables = database.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        assert tables == []


def test_a_tampered_file_is_refused_by_name(small_archive, fresh_instance, tmp_path):
    def flip(info, data):
        if info.name == "var/datasets/preference-abc.jsonl":
            data = data.replace(b'"a"', b'"b"', 1)
        return info, data

    tampered = rewrite(small_archive, tmp_path / "tampered.tar", flip)
    target = fresh_instance("tampered")

    result = manage(target, "restore", str(tampered))

    assert result.returncode != 0
    assert "var/datasets/preference-abc.jsonl does not match its SHA-256 in the manifest" in result.stderr
    assert_nothing_restored(target)


def test_a_truncated_archive_is_refused(small_archive, fresh_instance, tmp_path):
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(small_archive.read_bytes()[: small_archive.stat().st_size // 2])
    target = fresh_instance("truncated")

    result = manage(target, "restore", str(truncated))

    assert result.returncode != 0
    assert "truncated" in result.stderr
    assert_nothing_restored(target)


def test_a_member_outside_the_archive_folders_is_refused(small_archive, fresh_instance, tmp_path):
    def escape(info, data):
        if info.name == "var/datasets/preference-abc.jsonl":
            info.name = "var/../../escaped.jsonl"
        return info, data

    hostile = rewrite(small_archive, tmp_path / "hostile.tar", escape)
    target = fresh_instance("hostile")

    result = manage(target, "restore", str(hostile))

    assert result.returncode != 0
    assert "var/../../escaped.jsonl is not a plain file inside the archive's folders" in result.stderr
    assert not (tmp_path / "escaped.jsonl").exists()
    assert_nothing_restored(target)


def test_an_archive_of_the_other_database_is_refused_clearly(small_archive, fresh_instance, tmp_path):
    other = "postgresql" if connection.vendor == "sqlite" else "sqlite"

    def swap_vendor(info, data):
        if info.name in ("backup.json", "manifest.json"):
            manifest = json.loads(data)
            manifest["database"]["vendor"] = other
            data = json.dumps(manifest).encode()
        return info, data

    archive = rewrite(small_archive, tmp_path / "other.tar", swap_vendor)
    # Cut after the first members: the header alone refuses it, before the rest is read.
    archive.write_bytes(archive.read_bytes()[:4096])
    target = fresh_instance("other-vendor")

    result = manage(target, "restore", str(archive))

    assert result.returncode != 0
    assert f"holds a {other} database and this instance uses {connection.vendor}" in result.stderr
    assert_nothing_restored(target)


def test_it_refuses_an_existing_destination_and_leaves_nothing(db, source_var, tmp_path):
    existing = tmp_path / "taken.tar"
    existing.write_text("an older backup")

    with pytest.raises(CommandError, match="already exists"):
        call_command("backup", str(existing), stdout=io.StringIO())
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("backup", str(tmp_path / "no-such-folder" / "b.tar"), stdout=io.StringIO())

    assert existing.read_text() == "an older backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source-var", "taken.tar"]


def test_a_failed_backup_leaves_no_archive(db, source_var, tmp_path, monkeypatch):
    import rlhf_platform.backup as backup

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "full.tar"))

    monkeypatch.setattr(backup, "_add_file", disk_full)

    with pytest.raises(CommandError, match="nothing was written: the disk is full"):
        call_command("backup", str(tmp_path / "full.tar"), stdout=io.StringIO())

    assert sorted(p.name for p in tmp_path.iterdir()) == ["source-var"]


def training_migration_before_the_last() -> str:
    """The name of the training app's second-newest migration: a schema one migration older."""
    from django.db.migrations.loader import MigrationLoader

    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    (leaf,) = graph.leaf_nodes("training")
    (parent,) = (node for node in graph.node_map[leaf].parents if node[0] == "training")
    return parent[1]


@pytest.mark.django_db
def test_an_archive_of_an_older_schema_is_migrated_on_restore(fresh_instance, tmp_path):
    source = fresh_instance("older-source")
    assert manage(source, "migrate", "--noinput").returncode == 0
    rolled_back = manage(source, "migrate", "training", training_migration_before_the_last(), "--noinput")
    assert rolled_back.returncode == 0, rolled_back.stderr
    archive = tmp_path / "older.tar"
    assert manage(source, "backup", str(archive)).returncode == 0
    target = fresh_instance("older-target")

    restored = manage(target, "restore", str(archive))

    assert restored.returncode == 0, restored.stderr
    assert "The archive's schema is older: applying 1 migrations." in restored.stdout
    assert "[ ] " not in manage(target, "showmigrations", "training").stdout
