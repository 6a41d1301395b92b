"""Models given as a GGUF file (``gguf_file``): loaded dequantized, trained, and saved as safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.training.engine.conftest import only, run_spec_in_process, sft_rows, write_jsonl
from training.engine.models import detect_device, load_causal_lm, load_tokenizer


def write_gguf(model_dir: Path, directory: Path, name: str = "tiny.gguf") -> Path:
    """The safetensors Llama in ``model_dir`` as an fp32 GGUF file, the way llama.cpp's converter lays it out."""
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = model.config
    directory.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(directory / name), "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(config.vocab_size)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = sorted(backend["vocab"], key=backend["vocab"].get)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges([" ".join(merge) if isinstance(merge, list) else merge for merge in backend["merges"]])
    special = set(tokenizer.all_special_tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_chat_template(tokenizer.chat_template)

    def permuted(weight, heads):  # llama.cpp's rotary layout for q and k; transformers undoes it on load
        return (
            weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2)
            .reshape(weight.shape)
        )

    weights = {key: value.float().numpy() for key, value in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    writer.add_tensor("output.weight", weights["lm_head.weight"])
    for index in range(config.num_hidden_layers):
        layer = f"model.layers.{index}."
        block = f"blk.{index}."
        writer.add_tensor(block + "attn_norm.weight", weights[layer + "input_layernorm.weight"])
        writer.add_tensor(block + "ffn_norm.weight", weights[layer + "post_attention_layernorm.weight"])
        q = weights[layer + "self_attn.q_proj.weight"]
        k = weights[layer + "self_attn.k_proj.weight"]
        writer.add_tensor(block + "attn_q.weight", permuted(q, config.num_attention_heads))
        writer.add_tensor(block + "attn_k.weight", permuted(k, config.num_key_value_heads))
        writer.add_tensor(block + "attn_v.weight", weights[layer + "self_attn.v_proj.weight"])
        writer.add_tensor(block + "attn_output.weight", weights[layer + "self_attn.o_proj.weight"])
        writer.add_tensor(block + "ffn_gate.weight", weights[layer + "mlp.gate_proj.weight"])
        writer.add_tensor(block + "ffn_up.weight", weights[layer + "mlp.up_proj.weight"])
        writer.add_tensor(block + "ffn_down.weight", weights[layer + "mlp.down_proj.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return directory


@pytest.fixture(scope="module")
def gguf_dir(tiny_model, tmp_path_factory) -> Path:
    return write_gguf(tiny_model, tmp_path_factory.mktemp("gguf"))


def test_it_loads_a_gguf_file_as_the_same_model_and_can_save_it(tiny_model, gguf_dir, tmp_path):
    device = detect_device()
    from_gguf = load_causal_lm(str(gguf_dir), device, gguf_file="tiny.gguf")
    original = load_causal_lm(str(tiny_model), device)
    tokenizer = load_tokenizer(str(gguf_dir), gguf_file="tiny.gguf")
    ids = torch.tensor([tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]])
    torch.testing.assert_close(from_gguf(ids).logits, original(ids).logits, atol=1e-5, rtol=0)
    from_gguf.save_pretrained(tmp_path / "saved")  # refused by transformers for a model straight from GGUF
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_it_fine_tunes_a_gguf_model_and_saves_safetensors(gguf_dir, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    spec = {
        "stage": "sft",
        "model": str(gguf_dir),
        "gguf_file": "tiny.gguf",
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 2,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "adapter": {"method": "full"},
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    assert only(events, "checkpoint")
    saved = tmp_path / "out" / "model"
    assert (saved / "model.safetensors").is_file() and (saved / "tokenizer.json").is_file()
    assert load_causal_lm(str(saved), detect_device()) is not None


def test_it_converts_a_gguf_file_into_a_safetensors_directory_once(tiny_model, gguf_dir, tmp_path):
    from training.engine.convert import main

    out = tmp_path / "converted"
    assert main([str(gguf_dir / "tiny.gguf"), str(out)]) == 0
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.gguf"))
    converted = load_causal_lm(str(out), detect_device())
    original = load_causal_lm(str(tiny_model), detect_device())
    ids = torch.tensor([[2, 10, 20, 30]])
    torch.testing.assert_close(converted(ids).logits, original(ids).logits, atol=1e-5, rtol=1e-5)
    assert load_tokenizer(str(out)).chat_template == load_tokenizer(str(tiny_model)).chat_template
    with pytest.raises(SystemExit):  # never overwrites
        main([str(gguf_dir / "tiny.gguf"), str(out)])
