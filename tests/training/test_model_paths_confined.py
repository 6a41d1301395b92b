"""Model paths given through the API lie inside settings.MODEL_ROOTS, resolved first; the operator's
``register_model`` command is not confined."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from django.core.management import call_command

from training.models import ModelArtifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(settings, tmp_path):
    """One model root, holding a copy of the tiny model; the rest of the disk is outside."""
    root = tmp_path / "models"
    root.mkdir()
    settings.MODEL_ROOTS = [root]
    return root


def register(client, path: str, **fields):
    return client.post("/api/training/models/", {"path": path, "name": "m", **fields}, format="json")


def assert_outside(response, root) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert f"must be inside one of: {root}" in body["detail"], body
    assert "path" in body["errors"], body
    assert not ModelArtifact.objects.exists()


def test_it_registers_a_model_inside_a_root(manager_api, roots, tiny_model_dir):
    shutil.copytree(tiny_model_dir, roots / "tiny")
    response = register(manager_api, str(roots / "tiny"))
    assert response.status_code == 201, response.json()
    assert response.json()["path"] == str(roots / "tiny")


@pytest.mark.parametrize("where", ["/etc/passwd", "/etc", "/", "/nonexistent/model"])
def test_it_refuses_paths_outside_the_roots_without_reading_them(manager_api, roots, where):
    response = register(manager_api, where)
    assert_outside(response, roots)
    assert "root:" not in response.content.decode()


def test_it_refuses_a_gguf_file_outside_the_roots_named_by_gguf_file(manager_api, roots):
    assert_outside(register(manager_api, "/etc", gguf_file="passwd"), roots)


def test_it_refuses_a_model_outside_the_roots(manager_api, roots, tiny_model_dir):
    assert_outside(register(manager_api, str(tiny_model_dir)), roots)


def test_dot_dot_is_resolved_before_the_check(manager_api, roots, tiny_model_dir):
    sneaky = os.path.join(str(roots), "..", "..", *tiny_model_dir.parts[1:])
    assert_outside(register(manager_api, sneaky), roots)


def test_a_symlink_inside_a_root_is_followed_before_the_check(manager_api, roots, tiny_model_dir):
    (roots / "link").symlink_to(tiny_model_dir, target_is_directory=True)
    assert_outside(register(manager_api, str(roots / "link")), roots)


@pytest.mark.parametrize("path", ["~", "~/models/tiny", "~root/.ssh"])
def test_it_refuses_tilde_rather_than_expanding_it_to_the_servers_home(manager_api, roots, path):
    response = register(manager_api, path)
    assert response.status_code == 400, response.content
    assert "~ is not expanded" in response.json()["detail"]
    assert not ModelArtifact.objects.exists()


def test_it_refuses_a_relative_path(manager_api, roots):
    response = register(manager_api, "models/tiny")
    assert response.status_code == 400
    assert "absolute path" in response.json()["detail"]


def test_an_adapters_base_outside_the_roots_is_refused(manager_api, roots, tiny_model_dir):
    from safetensors.torch import save_file
    from torch import zeros

    adapter = roots / "adapter"
    adapter.mkdir()
    save_file({"lora_A.weight": zeros(2, 2)}, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    assert_outside(register(manager_api, str(adapter)), roots)


def test_more_roots_come_from_the_environment(monkeypatch, tmp_path):
    from rlhf_platform.env import env_paths

    environ = {"MODEL_ROOTS": f"{tmp_path}/a:{tmp_path}/b/../c, {tmp_path}/d"}
    assert env_paths("MODEL_ROOTS", environ=environ) == [tmp_path / "a", tmp_path / "c", tmp_path / "d"]
    assert env_paths("MODEL_ROOTS", environ={}) == []


def test_a_relative_root_in_the_environment_is_a_configuration_error():
    from django.core.exceptions import ImproperlyConfigured

    from rlhf_platform.env import env_paths

    with pytest.raises(ImproperlyConfigured, match="MODEL_ROOTS must list absolute directories"):
        env_paths("MODEL_ROOTS", environ={"MODEL_ROOTS": "~/models"})


def test_the_default_roots_are_under_var_dir():
    from django.conf import settings

    var_dir = settings.VAR_DIR
    # The training fixture widens both lists for the suite; the module's own defaults come first.
    from rlhf_platform import settings as defaults

    assert defaults.MODEL_ROOTS[0] == var_dir / "models"
    assert defaults.DATA_ROOTS[0] == var_dir / "data"


def test_the_operators_command_is_not_confined(roots, tiny_model_dir):
    call_command("register_model", str(tiny_model_dir), "--name", "tiny")
    assert ModelArtifact.objects.get().path == str(tiny_model_dir)


def test_a_link_inside_a_model_directory_that_leads_out_is_refused(manager_api, roots, tiny_model_dir):
    model = shutil.copytree(tiny_model_dir, roots / "tiny")
    (model / "config.json").unlink()
    (model / "config.json").symlink_to(tiny_model_dir / "config.json")
    response = register(manager_api, str(model))
    assert response.status_code == 400
    assert "config.json links outside the allowed directories" in response.json()["detail"]
    assert not ModelArtifact.objects.exists()
