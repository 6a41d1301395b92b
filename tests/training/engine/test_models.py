"""Loading models: an adapter's config is read defensively, and weights load from safetensors only."""

from __future__ import annotations

import pytest

from training.engine import models


def test_a_broken_adapter_config_is_a_clear_error(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"adapter_config\.json is not a JSON object"):
        models._adapter_base(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    with pytest.raises(ValueError, match="names no base model"):
        models._adapter_base(str(tmp_path))


def test_pickle_only_weights_are_not_loaded(tiny_model_dir, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = shutil.copytree(tiny_model_dir, tmp_path / "pickled")
    weights = next(pickled.glob("*.safetensors"))
    torch.save(load_file(str(weights)), pickled / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(OSError, match="safetensors"):
        models.load_causal_lm(str(pickled), models.detect_device())
