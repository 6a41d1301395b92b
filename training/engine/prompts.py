"""How prompts and responses become model input, the way TRL renders them.

A prompt is a string or a list of ``{role, content}`` messages; a response is a string or a list
holding one assistant message. Message lists go through the tokenizer's chat template; strings are
used as they are (plus EOS after a response, as TRL's trainers add it).
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

Prompt = str | list[dict[str, Any]]


def prompt_text(prompt: Prompt, tokenizer: PreTrainedTokenizerBase) -> str:
    """The text a model continues to answer ``prompt``."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def conversation_text(prompt: Prompt, response: Prompt, tokenizer: PreTrainedTokenizerBase) -> str:
    """Prompt and response as one text, as a reward model or a policy scores it."""
    if isinstance(prompt, str) and isinstance(response, str):
        return prompt + response + tokenizer.eos_token
    messages = _as_messages(prompt, "user") + _as_messages(response, "assistant")
    return tokenizer.apply_chat_template(messages, tokenize=False)


def _as_messages(value: Prompt, role: str) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else [{"role": role, "content": value}]
