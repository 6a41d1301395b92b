"""The Django-free training engine: ``python -m training.engine.run SPEC.json``.

Models load from local disk only; the Hugging Face Hub is never contacted.
"""

import os

# Set before transformers / huggingface_hub are imported anywhere in the engine's process.
os.environ["HF_HUB_OFFLINE"] = "1"
