"""Backup and restore of a whole instance: the database and the files under ``VAR_DIR``.

An archive is one tar file (gzip-compressed when its name ends in ``.gz`` or ``.tgz``), written
and read as a stream, so neither side ever holds it in memory:

- ``backup.json``, first: the manifest below without its file list, so that a restore refuses
  an archive it cannot use before reading all of it;
- ``database/db.sqlite3`` (SQLite, copied with SQLite's online backup API, consistent while the
  server and the worker write) or ``database/postgresql.dump`` (``pg_dump --format=custom``,
  one consistent snapshot of the database);
- ``var/<path>``: every file under ``VAR_DIR`` (snapshots, run directories, models, media, the
  development secret key), except caches that can be rebuilt (``CACHE_DIRS``) and database
  files, which are only ever copied through the database's own backup;
- ``manifest.json``, last: format version, creation time, app version, latest migration per
  app, database vendor, the original ``VAR_DIR``, and every file with its size and SHA-256.
  Registered models whose directory lies outside ``VAR_DIR`` are listed there as not included.

A restore stages every file beside its destination while hashing it, and puts nothing in
place until the whole archive has been read and every file matches the manifest.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from rlhf_platform.errors import UserError
from rlhf_platform.instance import MARKER_FILE_NAME, instance_marker_ensure

FORMAT = "rlhf-platform-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# The manifest without its file list, first in the archive: a restore refuses an archive it
# cannot use (another database, a newer schema) before reading gigabytes of it.
HEADER = "backup.json"
# A manifest lists every file (about 150 bytes each); anything far larger is not one.
MANIFEST_MAX_BYTES = 512 * 2**20
SQLITE_MEMBER = "database/db.sqlite3"
POSTGRESQL_MEMBER = "database/postgresql.dump"
# Folders directly under VAR_DIR that are caches: `collectstatic` and `make benchmark-data`
# rebuild them, and `downloads/` only holds files in transit.
CACHE_DIRS = ("static", "downloads", "benchmark-data")
# Tables that `migrate` fills by itself: a database holding only these is still empty.
BOOKKEEPING_TABLES = {
    "django_migrations", "django_content_type", "auth_permission", "auth_group", "rlhf_platform_instance",
}  # fmt: skip
# Files left behind by an interrupted backup or restore (see the temp names below).
PARTIAL_PREFIXES = (".restore-", ".backup-")
CHUNK = 1 << 20  # bytes read and hashed at a time
PROGRESS_EVERY_S = 2.0

Progress = Callable[[str], None]


class BackupError(UserError):
    """A backup or restore that cannot go on; nothing was left half-written."""


@dataclass
class RestoreReport:
    files: int = 0
    bytes: int = 0
    migrations_applied: int = 0
    paths_relocated: int = 0
    snapshots: dict[str, list[str]] = field(default_factory=lambda: {"ok": [], "missing": [], "mismatch": []})
    external_models: list[dict[str, Any]] = field(default_factory=list)


# --- backup -------------------------------------------------------------------------------------


def backup_create(*, destination: Path, progress: Progress = lambda line: None) -> dict[str, Any]:
    """Write the archive to ``destination``; returns its manifest.

    The archive is written under a temporary name in the same folder and renamed when complete,
    so an interrupted or failed backup (disk full, a file that vanished) leaves no archive that
    looks whole. Files are read once: hashed as they stream into the archive.
    """
    destination = Path(destination).expanduser().absolute()
    if destination.exists():
        raise BackupError(f"{destination} already exists; choose a new name.", {"destination": "Already exists."})
    if not destination.parent.is_dir():
        raise BackupError(f"{destination.parent} is not a folder.", {"destination": "No such folder."})
    if not os.access(destination.parent, os.W_OK | os.X_OK):
        raise BackupError(f"{destination.parent} is not writable.", {"destination": "Not writable."})
    compress = destination.name.endswith((".gz", ".tgz"))
    var_dir = Path(settings.VAR_DIR)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "app_version": _app_version(),
        "migrations": _latest_migrations(),
        "database": {"vendor": connection.vendor},
        "var_dir": str(var_dir),
        "excluded": [f"var/{name}/" for name in CACHE_DIRS] + ["database files under VAR_DIR (see database/)"],
        "external_models": _external_models(var_dir),
        "files": [],
    }
    temporary = destination.parent / f".backup-{destination.name}.{os.getpid()}.partial"
    try:
        with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".backup-") as scratch:
            # The database first, then the files: a snapshot or a model's files are written before
            # their row commits, so every row in the copy finds its files in the archive.
            database_copy = _database_copy(Path(scratch))
            manifest["database"]["file"] = SQLITE_MEMBER if connection.vendor == "sqlite" else POSTGRESQL_MEMBER
            files = [(manifest["database"]["file"], database_copy)]
            files += [(f"var/{path.relative_to(var_dir).as_posix()}", path) for path in _var_files(var_dir)]
            total = sum(path.stat().st_size for _, path in files)
            progress(f"Backing up {len(files):,} files, {_size(total)}, to {destination}")
            with (
                temporary.open("xb") as handle,
                _compressed(handle, compress) as stream,
                tarfile.open(fileobj=stream, mode="w|") as archive,
            ):
                header = {key: value for key, value in manifest.items() if key != "files"}
                _add_bytes(archive, HEADER, json.dumps(header, indent=2).encode())
                meter = _Meter(progress, total)
                for name, path in files:
                    manifest["files"].append(_add_file(archive, name, path, meter))
                _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
        os.replace(temporary, destination)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise BackupError(f"Backup failed, nothing was written: {reason} ({error.filename or destination}).") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return manifest


@contextlib.contextmanager
def _compressed(handle: IO[bytes], compress: bool) -> Iterator[IO[bytes]]:
    if not compress:
        yield handle
        return
    # Level 6, gzip's default: level 9 (tarfile's streaming default) costs twice the time on
    # model weights for a few percent.
    with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=6) as stream:
        yield stream


def _app_version() -> str:
    try:
        return metadata.version("rlhf-platform")
    except metadata.PackageNotFoundError:
        # Run from a checkout that was never installed: the archive still restores by migrations.
        return "unknown"


def _latest_migrations() -> dict[str, str]:
    """App label -> name of its latest applied migration (by number)."""
    latest: dict[str, str] = {}
    for app, name in sorted(MigrationLoader(connection, ignore_no_migrations=True).applied_migrations):
        latest[app] = name
    return latest


def _external_models(var_dir: Path) -> list[dict[str, Any]]:
    from training.models import ModelArtifact

    outside = []
    for model in ModelArtifact.objects.order_by("pk").only("pk", "name", "path"):
        if not _is_under(Path(model.path), var_dir):
            outside.append({"id": model.pk, "name": model.name, "path": model.path, "included": False})
    return outside


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _database_copy(scratch: Path) -> Path:
    """A consistent copy of the database in ``scratch``, taken while the instance may be running."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        copy = scratch / "db.sqlite3"
        if not Path(database["NAME"]).is_file():
            raise BackupError(f"The database file {database['NAME']} does not exist.")
        # SQLite's online backup copies every page in one step under a read lock: the copy is
        # one committed state, and with WAL the server and the worker keep writing meanwhile.
        source = sqlite3.connect(database["NAME"])
        target = sqlite3.connect(copy)
        try:
            with target:
                source.backup(target)
        finally:
            source.close()
            target.close()
        return copy
    if connection.vendor == "postgresql":
        copy = scratch / "postgresql.dump"
        _postgres_tool(["pg_dump", "--format=custom", f"--file={copy}"], database)
        return copy
    raise BackupError(f"Backups support SQLite and PostgreSQL, not {connection.vendor}.")


def _postgres_tool(command: list[str], database: dict[str, Any]) -> None:
    """Run a PostgreSQL client tool on ``database``; the password goes through the environment."""
    environment = {
        **os.environ,
        "PGHOST": str(database.get("HOST") or ""),
        "PGPORT": str(database.get("PORT") or ""),
        "PGUSER": str(database.get("USER") or ""),
        "PGPASSWORD": str(database.get("PASSWORD") or ""),
        "PGDATABASE": str(database["NAME"]),
    }
    try:
        # A fixed client tool; the only other argument is a path this module created.
        result = subprocess.run(command, env=environment, capture_output=True, text=True)  # noqa: S603
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} is not installed; install PostgreSQL's client tools (Debian: postgresql-client)."
        ) from None
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")


def _var_files(var_dir: Path) -> Iterator[Path]:
    """The files of ``VAR_DIR`` that make up the instance, in a stable order.

    Symbolic links to folders are not followed (they could loop, or reach anywhere); links to
    files are archived as the file they point at.
    """
    if not var_dir.is_dir():
        return
    skipped_dirs = {var_dir / name for name in CACHE_DIRS}
    skipped_dirs |= {Path(settings.STATIC_ROOT), Path(settings.BENCHMARK_DATA_DIR)}
    for root, dirs, files in os.walk(var_dir):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if here / d not in skipped_dirs and not d.startswith(PARTIAL_PREFIXES))
        for name in sorted(files):
            path = here / name
            if name.startswith(PARTIAL_PREFIXES) or (here == var_dir and _is_database_file(name)):
                continue
            if path.is_file():
                yield path


def _is_database_file(name: str) -> bool:
    # A raw copy of a live SQLite file is not consistent: databases travel as database/ only.
    return name.endswith((".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".sqlite3-journal"))


class _Meter:
    """Prints how far a long copy has got, at most every few seconds."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.done, self.files = progress, total, 0, 0
        self.last = time.monotonic()

    def add(self, size: int) -> None:
        self.done += size
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            share = f" of {_size(self.total)}" if self.total else ""
            self.progress(f"  {self.files:,} files, {_size(self.done)}{share}")


class _HashingReader:
    """A file object that hashes what is read through it."""

    def __init__(self, handle: IO[bytes], meter: _Meter):
        self.handle, self.meter, self.digest, self.read_bytes = handle, meter, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.read_bytes += len(data)
        self.meter.add(len(data))
        return data


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.offset + size
        chunk, self.offset = self.data[self.offset : end], min(end, len(self.data))
        return chunk


def _add_file(archive: tarfile.TarFile, name: str, path: Path, meter: _Meter) -> dict[str, Any]:
    with path.open("rb") as handle:
        stat = os.fstat(handle.fileno())
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), stat.st_mode & 0o777
        reader = _HashingReader(handle, meter)
        # tarfile reads exactly info.size bytes: a file that grew is archived as it was when the
        # backup reached it, one that shrank cannot be archived whole.
        try:
            archive.addfile(info, reader)
        except OSError as error:
            if error.errno is not None:
                raise
            raise BackupError(
                f"{path} shrank while it was being backed up (a run still writing it?); nothing was written. "
                "Run the backup again.",
            ) from None
    meter.files += 1
    return {"path": name, "size": reader.read_bytes, "sha256": reader.digest.hexdigest()}


def _add_bytes(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), int(time.time()), 0o600
    archive.addfile(info, _BytesReader(payload))


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


# --- restore ------------------------------------------------------------------------------------


def backup_restore(*, archive: Path, force: bool = False, progress: Progress = lambda line: None) -> RestoreReport:
    """Restore ``archive`` into this instance's database and ``VAR_DIR``.

    Refuses a non-empty target unless ``force``. Every file is staged under ``VAR_DIR`` and its
    SHA-256 checked against the manifest before anything is put in place; then the database is
    replaced (SQLite: the file is swapped; PostgreSQL: ``pg_restore --single-transaction``, all or
    nothing), the files are moved in, ``migrate`` brings an older schema up to date, stored paths
    follow ``VAR_DIR`` if it moved, and every snapshot is rehashed. Stop the server and the
    workers first: a restore under a running instance would mix the two.
    """
    archive = Path(archive).expanduser().absolute()
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist or is not a file.", {"archive": "No such file."})
    var_dir = Path(settings.VAR_DIR)
    if not force:
        _refuse_non_empty_target(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    report = RestoreReport()
    with tempfile.TemporaryDirectory(dir=var_dir, prefix=".restore-") as staging:
        manifest, staged = _stage(archive, Path(staging), progress)
        _check_compatible(manifest)
        report.files = len(manifest["files"])
        report.bytes = sum(entry["size"] for entry in manifest["files"])
        progress(f"All {report.files:,} files ({_size(report.bytes)}) match the manifest.")
        _restore_database(manifest, staged[manifest["database"]["file"]])
        progress("Database restored.")
        for name, path in staged.items():
            if name.startswith("var/"):
                target = var_dir / PurePosixPath(name).relative_to("var")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    report.migrations_applied = _migrate_if_older(progress)
    # The restored database's marker, written to this VAR_DIR: a worker beside it then starts.
    instance_marker_ensure()
    from training.services.relocation import training_paths_relocate

    report.paths_relocated = training_paths_relocate(old_root=Path(manifest["var_dir"]), new_root=var_dir)
    report.external_models = [
        {**model, "present": Path(model["path"]).exists()} for model in manifest.get("external_models", [])
    ]
    from labeling.selectors import datasets_verify

    for check in datasets_verify():
        report.snapshots[check.outcome].append(f"{check.dataset.pk} {check.dataset.name} ({check.dataset.file_name})")
    return report


def _refuse_non_empty_target(var_dir: Path) -> None:
    tables = [
        table
        for table in connection.introspection.table_names()
        if table not in BOOKKEEPING_TABLES and _table_has_rows(table)
    ]
    if tables:
        raise BackupError(
            f"The database is not empty (rows in {', '.join(sorted(tables)[:5])}"
            f"{', ...' if len(tables) > 5 else ''}). Restore into a fresh database, or pass --force "
            "to replace everything in it.",
            {"database": "Not empty."},
        )
    # What `migrate` leaves in a fresh VAR_DIR is not an instance's data.
    present = [path for path in _var_files(var_dir) if path.name not in ("dev_secret_key", MARKER_FILE_NAME)]
    if present:
        raise BackupError(
            f"{var_dir} already holds instance files (e.g. {present[0]}). Restore into an empty VAR_DIR, "
            "or pass --force to overwrite the files the archive holds.",
            {"var_dir": "Not empty."},
        )


def _table_has_rows(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")  # noqa: S608 (a table name)
        return cursor.fetchone() is not None


def _stage(archive: Path, staging: Path, progress: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
    """Extract every member into ``staging`` while hashing it; the manifest and the staged paths.

    Raises if the archive is not a backup, is truncated, or a member is missing, extra, or does
    not hash as the manifest says.
    """
    seen: dict[str, tuple[int, str]] = {}
    staged: dict[str, Path] = {}
    header: dict[str, Any] | None = None
    manifest_bytes: bytes | None = None
    current = None
    try:
        with tarfile.open(archive, "r|*") as stream:
            for member in stream:
                current = member.name
                if member.isdir():
                    continue
                name = _safe_member_name(member)
                if name in (HEADER, MANIFEST):
                    if member.size > MANIFEST_MAX_BYTES:
                        raise BackupError(f"{name} in {archive} is too large to be a manifest.", {"archive": "Bad."})
                    payload = stream.extractfile(member).read()
                    if name == MANIFEST:
                        manifest_bytes = payload
                    else:
                        header = _parse_manifest(payload, archive, name)
                        _check_compatible(header)
                    continue
                if name in seen:
                    raise BackupError(f"{name} appears twice in the archive; it is not a backup of this app.")
                target = staging / f"{len(staged):08d}"
                digest = hashlib.sha256()
                size = 0
                source = stream.extractfile(member)
                with target.open("wb") as handle:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        handle.write(chunk)
                os.chmod(target, member.mode & 0o777 or 0o600)
                seen[name] = (size, digest.hexdigest())
                staged[name] = target
                if len(staged) % 1000 == 0:
                    progress(f"  read {len(staged):,} files")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        where = f" (while reading {current})" if current else ""
        raise BackupError(f"{archive} is truncated or corrupt{where}: {error}", {"archive": "Corrupt."}) from None
    if manifest_bytes is None:
        raise BackupError(
            f"{archive} has no {MANIFEST}: it is truncated, or not a backup of this app.", {"archive": "No manifest."}
        )
    manifest = _parse_manifest(manifest_bytes, archive, MANIFEST)
    if header is not None and header != {key: value for key, value in manifest.items() if key != "files"}:
        raise BackupError(
            f"{HEADER} and {MANIFEST} in {archive} disagree: the archive was changed.", {"archive": "Changed."}
        )
    expected = {entry["path"]: (entry["size"], entry["sha256"]) for entry in manifest.get("files", [])}
    for name, (size, sha256) in expected.items():
        if name not in seen:
            raise BackupError(f"{name} is missing from {archive}: the archive is truncated.", {"archive": "Truncated."})
        if seen[name] != (size, sha256):
            raise BackupError(
                f"{name} does not match its SHA-256 in the manifest: the archive was changed or damaged.",
                {"archive": "Checksum mismatch."},
            )
    extra = sorted(set(seen) - set(expected))
    if extra:
        raise BackupError(f"{extra[0]} is in the archive but not in its manifest.", {"archive": "Unknown file."})
    return manifest, staged


def _parse_manifest(payload: bytes, archive: Path, name: str) -> dict[str, Any]:
    try:
        manifest = json.loads(payload)
    except ValueError:
        raise BackupError(f"{name} in {archive} is not valid JSON.", {"archive": "Bad manifest."}) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not a backup of this app.", {"archive": "Not a backup."})
    return manifest


def _safe_member_name(member: tarfile.TarInfo) -> str:
    """The member's name, if it is a plain file that stays inside the restore's folders."""
    path = PurePosixPath(member.name)
    if not member.isfile() or path.is_absolute() or ".." in path.parts:
        raise BackupError(f"{member.name} is not a plain file inside the archive's folders; refusing the archive.")
    name = path.as_posix()
    if name not in (HEADER, MANIFEST) and not (name.startswith("var/") or name.startswith("database/")):
        raise BackupError(f"{name} is not part of a backup of this app.", {"archive": "Unknown file."})
    return name


def _check_compatible(manifest: dict[str, Any]) -> None:
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(
            f"The archive has format version {manifest['format_version']}; this version reads up to "
            f"{FORMAT_VERSION}. Restore with the app version that made it ({manifest.get('app_version')}).",
        )
    vendor = manifest["database"]["vendor"]
    if vendor != connection.vendor:
        raise BackupError(
            f"The archive holds a {vendor} database and this instance uses {connection.vendor}. "
            f"Restore it into a {vendor} instance (set DATABASE_URL); converting between databases "
            "is not supported.",
            {"archive": "Other database."},
        )
    known = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    unknown = [f"{app}.{name}" for app, name in manifest.get("migrations", {}).items() if (app, name) not in known]
    if unknown:
        raise BackupError(
            f"The archive comes from a newer version of the app (migration {unknown[0]} is unknown here). "
            "Upgrade the app, then restore.",
            {"archive": "Newer schema."},
        )


def _restore_database(manifest: dict[str, Any], staged: Path) -> None:
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        target = Path(database["NAME"])
        connections.close_all()
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        # The staged copy is under VAR_DIR; when the database lives elsewhere this copies it.
        shutil.move(staged, target)
        return
    # One transaction: a failed restore leaves the database as it was.
    _postgres_tool(
        [
            *("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction"),
            *("--dbname", database["NAME"], str(staged)),
        ],
        database,
    )
    # Pooled connections keep statements prepared against the tables pg_restore replaced.
    for alias in connections:
        if hasattr(connections[alias], "close_pool"):
            connections[alias].close_pool()
    connections.close_all()


def _migrate_if_older(progress: Progress) -> int:
    from django.core.management import call_command

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        progress(f"The archive's schema is older: applying {len(plan)} migrations.")
        call_command("migrate", interactive=False, verbosity=0)
    return len(plan)
