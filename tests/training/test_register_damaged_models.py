"""Registering a damaged model, or an adapter on a base the platform would refuse, is a 400 naming
the file and the fault; nothing is registered, and nothing raises past the API."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.training.engine.test_gguf import write_gguf
from training.models import ModelArtifact

pytestmark = pytest.mark.django_db


def register(client, path: Path, **fields):
    return client.post("/api/training/models/", {"path": str(path), "name": "m", **fields}, format="json")


def assert_refused(response, *words: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert "path" in body["errors"], body
    for word in words:
        assert word in body["detail"], body
    assert not ModelArtifact.objects.exists()


def copy_model(tiny_model_dir: Path, tmp_path: Path, name: str = "model") -> Path:
    return shutil.copytree(tiny_model_dir, tmp_path / name)


def weights_file(directory: Path) -> Path:
    return next(directory.glob("*.safetensors"))


def write_adapter(directory: Path, base: object) -> Path:
    from safetensors.torch import save_file
    from torch import zeros

    directory.mkdir(parents=True)
    save_file({"base_model.model.lora_A.weight": zeros(2, 4)}, str(directory / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": 2, "base_model_name_or_path": base}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"architectures": ["LlamaForCausalLM"', ["config.json", "not valid JSON"]),
        ("[1, 2, 3]", ["config.json", "must hold a JSON object, not an array"]),
        (b"\xff\xfe{}", ["config.json", "not UTF-8"]),
        ("[" * 5000 + "]" * 5000, ["config.json", "nested too deeply"]),
    ],
)
def test_it_refuses_a_broken_config_json(manager_api, tiny_model_dir, tmp_path, content, words):
    model = copy_model(tiny_model_dir, tmp_path)
    config = model / "config.json"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_refused(register(manager_api, model), *words)


def test_it_checks_a_safetensors_headers_declared_length_against_the_file_size(manager_api, tiny_model_dir, tmp_path):
    model = copy_model(tiny_model_dir, tmp_path)
    weights = weights_file(model)
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 2**62) + data[8:])  # read as is, it raised MemoryError
    assert_refused(register(manager_api, model), weights.name, "declares", "not a valid safetensors file")


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: struct.pack("<Q", 12) + b"not json!!!!" + data[8:], ["header is not a JSON object"]),
        (lambda data: struct.pack("<Q", 2) + b"[]" + data[8:], ["header is not a JSON object"]),
        (lambda data: data[:5], ["shorter than the 8-byte header length"]),
        (lambda data: data[: len(data) // 2], ["truncated"]),
        (
            lambda data: _with_header(data, {"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}}),
            ["no valid shape"],
        ),
    ],
)
def test_it_refuses_a_damaged_safetensors_file(manager_api, tiny_model_dir, tmp_path, damage, words):
    model = copy_model(tiny_model_dir, tmp_path)
    weights = weights_file(model)
    weights.write_bytes(damage(weights.read_bytes()))
    assert_refused(register(manager_api, model), weights.name, *words)


def _with_header(data: bytes, header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 64


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{broken", ["adapter_config.json", "not valid JSON"]),
        ('"just a string"', ["adapter_config.json", "must hold a JSON object, not a string"]),
        ('{"peft_type": "LORA"}', ["adapter_config.json", "names no base model"]),
        ('{"base_model_name_or_path": 7}', ["adapter_config.json", "names no base model"]),
    ],
)
def test_it_refuses_a_bad_adapter_config(manager_api, tiny_model_dir, tmp_path, content, words):
    adapter = write_adapter(tmp_path / "adapter", str(tiny_model_dir))
    (adapter / "adapter_config.json").write_text(content)
    assert_refused(register(manager_api, adapter), *words)


def test_it_refuses_an_adapter_whose_base_needs_its_own_code(manager_api, tiny_model_dir, tmp_path):
    base = copy_model(tiny_model_dir, tmp_path, "custom-base")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling_x.X"}}))
    adapter = write_adapter(tmp_path / "adapter", str(base))
    assert_refused(register(manager_api, adapter), "base model", "auto_map", "never runs remote code")


def test_it_refuses_an_adapter_whose_base_has_only_pickle_weights(manager_api, tiny_model_dir, tmp_path):
    base = copy_model(tiny_model_dir, tmp_path, "pickle-base")
    weights_file(base).rename(base / "pytorch_model.bin")
    adapter = write_adapter(tmp_path / "adapter", str(base))
    assert_refused(register(manager_api, adapter), "base model", "no .safetensors weights")


@pytest.mark.parametrize("base", ["HuggingFaceTB/SmolLM2-135M", "hf://HuggingFaceTB/SmolLM2-135M", "relative/dir"])
def test_it_refuses_an_adapter_whose_base_is_not_a_local_directory(manager_api, tmp_path, base):
    adapter = write_adapter(tmp_path / "adapter", base)
    assert_refused(register(manager_api, adapter), "adapter_config.json", "not a local directory")


def test_it_refuses_an_adapter_on_a_missing_or_damaged_base(manager_api, tiny_model_dir, tmp_path):
    adapter = write_adapter(tmp_path / "adapter", str(tmp_path / "gone"))
    assert_refused(register(manager_api, adapter), "is not a directory")
    base = copy_model(tiny_model_dir, tmp_path, "damaged-base")
    (base / "config.json").write_text("{")
    second = write_adapter(tmp_path / "adapter-2", str(base))
    assert_refused(register(manager_api, second), "base model", "config.json", "not valid JSON")


def test_it_registers_an_adapter_on_a_sound_base_and_links_it(manager_api, tiny_model_dir, tmp_path):
    base = register(manager_api, tiny_model_dir)
    assert base.status_code == 201, base.json()
    adapter = write_adapter(tmp_path / "adapter", str(tiny_model_dir) + "/")
    response = manager_api.post("/api/training/models/", {"path": str(adapter), "name": "a"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["base_model"]) == ("adapter", base.json()["id"])


@pytest.fixture(scope="module")
def gguf_file(tiny_model_dir, tmp_path_factory) -> Path:
    return write_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf")) / "tiny.gguf"


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.001])
def test_it_refuses_a_truncated_gguf_file(manager_api, gguf_file, tmp_path, keep):
    truncated = tmp_path / "cut.gguf"
    data = gguf_file.read_bytes()
    truncated.write_bytes(data[: int(len(data) * keep)])
    assert_refused(register(manager_api, truncated), "cut.gguf", "not a readable GGUF file")


def test_it_refuses_a_file_named_gguf_that_is_not_one(manager_api, tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\n")
    response = register(manager_api, fake)
    assert_refused(response, "notes.gguf", "not a GGUF file")
    assert "root:x" not in response.content.decode()


def test_the_command_refuses_damaged_files_with_the_same_message(tiny_model_dir, tmp_path):
    model = copy_model(tiny_model_dir, tmp_path)
    (model / "config.json").write_text("null")
    with pytest.raises(CommandError, match=r"config\.json must hold a JSON object, not null"):
        call_command("register_model", str(model), "--name", "m")
    assert not ModelArtifact.objects.exists()
