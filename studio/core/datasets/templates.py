"""Chat templates a user can pick for a model that has none of its own (a base model).

A base model has never seen any chat format, so which one it learns is the user's decision: the
studio never picks one silently. These are the real shapes of the common families' templates, so
an adapter trained with one works in tools that expect that family's format. The choice travels in
the run config (``model.chat_template``), is set on the tokenizer before rendering, and is saved
with the adapter's tokenizer files (``chat_template.jinja``), so exports and the playground use it.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import StudioError

# "" means the model's own template; every other key names one of the shapes below.
TEMPLATES: dict[str, str] = {
    "chatml": (
        "{%- for message in messages %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    ),
    "llama3": (
        "{{- bos_token }}"
        "{%- for message in messages %}"
        "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
        " + '<|eot_id|>' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
    ),
    # Gemma has no system role: the system text opens the first user turn; the assistant is "model".
    "gemma": (
        "{{- bos_token }}"
        "{%- if messages[0]['role'] == 'system' %}{%- set first = messages[0]['content'] + '\\n\\n' %}"
        "{%- set loop_messages = messages[1:] %}"
        "{%- else %}{%- set first = '' %}{%- set loop_messages = messages %}{%- endif %}"
        "{%- for message in loop_messages %}"
        "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
        "{{- '<start_of_turn>' + role + '\\n' + (first if loop.first else '') + message['content'] | trim"
        " + '<end_of_turn>\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
    ),
    # Mistral's [INST] format: the system text opens the first user turn; answers end with eos.
    "mistral": (
        "{{- bos_token }}"
        "{%- if messages[0]['role'] == 'system' %}{%- set first = messages[0]['content'] + '\\n\\n' %}"
        "{%- set loop_messages = messages[1:] %}"
        "{%- else %}{%- set first = '' %}{%- set loop_messages = messages %}{%- endif %}"
        "{%- for message in loop_messages %}"
        "{%- if message['role'] == 'user' %}"
        "{{- '[INST] ' + (first if loop.first else '') + message['content'] + ' [/INST]' }}"
        "{%- else %}{{- message['content'] + eos_token }}{%- endif %}"
        "{%- endfor %}"
    ),
    # Plain prompt-completion (Alpaca's layout): no special tokens at all, the answer ends with eos.
    "alpaca": (
        "{%- for message in messages %}"
        "{%- if message['role'] == 'system' %}{{- message['content'] + '\\n\\n' }}"
        "{%- elif message['role'] == 'user' %}{{- '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
        "{%- else %}{{- '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '### Response:\\n' }}{%- endif %}"
    ),
}

LABELS: dict[str, str] = {
    "": "Model's own",
    "chatml": "ChatML",
    "llama3": "Llama-3",
    "gemma": "Gemma",
    "mistral": "Mistral",
    "alpaca": "Alpaca / plain prompt-completion",
}
CHOICES: tuple[str, ...] = tuple(LABELS)


def choices_text() -> str:
    return ", ".join(f"{LABELS[k]} ({k})" for k in TEMPLATES)


def has_own_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def apply_choice(tokenizer, choice: str) -> None:
    """Put the chosen template on ``tokenizer`` ("" keeps the model's own). Saving the tokenizer
    afterwards writes it as ``chat_template.jinja``, so the adapter carries the format it learned."""
    if not choice:
        return
    if choice not in TEMPLATES:
        raise StudioError(f"Unknown chat template '{choice}'. Pick one of: {choices_text()}.")
    tokenizer.chat_template = TEMPLATES[choice]


def missing_template_message(model: str | Path | None = None) -> str:
    where = f"The model {Path(model).name} " if model else "This model "
    return (f"{where}has no chat template (it is a base model), so it has never seen a chat format. "
            f"Pick the one it should learn: {choices_text()} — Chat format in Configure, "
            "model.chat_template in the run config, or --template for studio validate.")
