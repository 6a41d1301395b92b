"""Convert a GGUF model into a safetensors model directory (weights, config and tokenizer with its chat template).

Loading a GGUF file dequantizes every weight (about 25 s for SmolLM2-135M on 2 cores); the
converted directory then loads in well under a second. Run it once per model::

    python -m training.engine.convert MODEL.gguf OUT_DIR

The weights are kept in fp32 (the dequantized values, unchanged), the tokenizer and its chat
template come from the GGUF metadata. Nothing is downloaded; an existing ``OUT_DIR`` is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from training.engine.models import Device, load_causal_lm, load_tokenizer

CPU_FP32 = Device(cuda=False, dtype=torch.float32, attn_implementation="sdpa")


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write ``gguf_path``'s model as safetensors into ``out_dir`` (created); returns ``out_dir``."""
    if gguf_path.suffix != ".gguf" or not gguf_path.is_file():
        raise ValueError(f"{gguf_path} is not a .gguf file")
    if out_dir.exists():
        raise ValueError(f"{out_dir} already exists; choose a new directory")
    model = load_causal_lm(str(gguf_path.parent), CPU_FP32, gguf_file=gguf_path.name)
    tokenizer = load_tokenizer(str(gguf_path.parent), gguf_file=gguf_path.name)
    partial = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    partial.rename(out_dir)  # the directory appears only once complete
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.engine.convert", description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path, help="the .gguf file")
    parser.add_argument("out", type=Path, help="the safetensors directory to create")
    args = parser.parse_args(argv)
    try:
        convert_gguf(args.gguf, args.out)
    except ValueError as error:
        parser.error(str(error))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
