"""``manage.py register_model``: local safetensors directories and GGUF files; anything else is refused."""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from tests.training.engine.test_gguf import write_gguf
from training.models import ModelArtifact

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def gguf_dir(tiny_model_dir, tmp_path_factory):
    return write_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf"))


def test_it_registers_a_safetensors_directory_with_its_size_and_parameters(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    call_command("register_model", str(tiny_model_dir), "--name", "tiny")
    artifact = ModelArtifact.objects.get()
    expected = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    assert (artifact.name, artifact.kind, artifact.path) == ("tiny", "causal_lm", str(tiny_model_dir))
    assert artifact.parameter_count == expected and artifact.size_bytes > 0 and artifact.gguf_file == ""


def test_it_registers_a_gguf_file_by_its_path_or_by_name_in_a_directory(gguf_dir):
    call_command("register_model", str(gguf_dir / "tiny.gguf"), "--name", "by path")
    call_command("register_model", str(gguf_dir), "--gguf-file", "tiny.gguf", "--name", "by name")
    by_path, by_name = ModelArtifact.objects.order_by("id")
    for artifact in (by_path, by_name):
        assert (artifact.path, artifact.gguf_file, artifact.kind) == (str(gguf_dir), "tiny.gguf", "causal_lm")
        assert artifact.parameter_count > 0 and artifact.size_bytes == (gguf_dir / "tiny.gguf").stat().st_size


def test_it_detects_a_reward_model(tiny_model_dir, tmp_path):
    reward_dir = shutil.copytree(tiny_model_dir, tmp_path / "rm")
    config = json.loads((reward_dir / "config.json").read_text())
    (reward_dir / "config.json").write_text(json.dumps({**config, "architectures": ["LlamaForSequenceClassification"]}))
    call_command("register_model", str(reward_dir), "--name", "rm")
    assert ModelArtifact.objects.get().kind == "reward_model"


@pytest.mark.parametrize(
    ("make_path", "extra", "message"),
    [
        (lambda tmp, model: str(tmp / "missing"), [], "does not exist"),
        (lambda tmp, model: "hf://HuggingFaceTB/SmolLM2-135M", [], "local paths only"),
        (lambda tmp, model: str(model / "config.json"), [], "not a .gguf file"),
        (lambda tmp, model: str(tmp), [], "no config.json"),
        (lambda tmp, model: str(model), ["--gguf-file", "../x.gguf"], "is not a file in"),
    ],
)
def test_it_refuses_what_is_not_a_local_model(tiny_model_dir, tmp_path, make_path, extra, message):
    with pytest.raises(CommandError, match=message):
        call_command("register_model", make_path(tmp_path, tiny_model_dir), "--name", "x", *extra)
    assert not ModelArtifact.objects.exists()


def test_it_refuses_models_that_need_their_own_code(tiny_model_dir, tmp_path):
    custom = shutil.copytree(tiny_model_dir, tmp_path / "custom")
    config = json.loads((custom / "config.json").read_text())
    (custom / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling_x.X"}}))
    with pytest.raises(CommandError, match="never runs remote code"):
        call_command("register_model", str(custom), "--name", "custom")


def test_set_up_scripts_register_a_model_once(tiny_model_dir):
    for _ in range(2):
        call_command("register_model", str(tiny_model_dir), "--name", "tiny", "--skip-existing")
    assert ModelArtifact.objects.count() == 1
    call_command("register_model", str(tiny_model_dir), "--name", "tiny")  # without the flag: a second entry
    assert ModelArtifact.objects.count() == 2


def test_set_up_scripts_register_a_gguf_file_once_however_its_path_is_spelled(gguf_dir):
    call_command("register_model", str(gguf_dir / "tiny.gguf"), "--name", "tiny-gguf", "--skip-existing")
    call_command("register_model", str(gguf_dir), "--gguf-file", "tiny.gguf", "--name", "tiny-gguf", "--skip-existing")
    assert ModelArtifact.objects.count() == 1


def test_a_registration_through_the_api_is_audited_and_a_refused_one_is_not(tiny_model_dir, manager, tmp_path):
    from auditlog.models import LogEntry
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(manager)
    registered = client.post("/api/training/models/", {"path": str(tiny_model_dir), "name": "tiny"}, format="json")
    refused = client.post("/api/training/models/", {"path": str(tmp_path), "name": "empty"}, format="json")

    assert (registered.status_code, refused.status_code) == (201, 400)
    [entry] = LogEntry.objects.filter(additional_data__action="model.register")
    assert (entry.actor, entry.object_id, entry.additional_data["path"]) == (
        manager,
        registered.json()["id"],
        str(tiny_model_dir),
    )


def test_it_registers_a_bottleneck_adapter_with_its_base(tiny_model_dir, tmp_path):
    from training.engine import bottleneck
    from training.engine.adapters import apply_adapter
    from training.engine.models import detect_device, load_causal_lm
    from training.engine.spec import AdapterSpec

    call_command("register_model", str(tiny_model_dir), "--name", "base")
    model = apply_adapter(
        load_causal_lm(str(tiny_model_dir), detect_device()), AdapterSpec(method="bottleneck"), task_type="CAUSAL_LM"
    )
    bottleneck.save(model, tmp_path / "adapter", base_model=str(tiny_model_dir))
    call_command("register_model", str(tmp_path / "adapter"), "--name", "adapter")
    adapter = ModelArtifact.objects.get(name="adapter")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (adapter.kind, adapter.base_model.name) == ("adapter", "base")
    assert adapter.trainable_parameter_count == trainable

    (tmp_path / "adapter" / "bottleneck_model.safetensors").unlink()
    with pytest.raises(CommandError, match=r"bottleneck_config\.json but no adapter weights"):
        call_command("register_model", str(tmp_path / "adapter"), "--name", "broken")
