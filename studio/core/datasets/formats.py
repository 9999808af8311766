"""The row shapes the studio understands, detected per row, and their normal form.

Every trainable row becomes an ``Example``: either a chat (a list of role/content turns, loss on the
assistant turns) or plain text (loss on everything); a preference row becomes a ``pairs.Pair``. Detection looks at each row on its own so a
mixed file is reported as mixed instead of failing at row 1000 with ``KeyError: 'instruction'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

FormatName = Literal["alpaca", "prompt_completion", "text", "messages", "sharegpt", "preference"]
# Last, so the per-row format codes of the first five stay as they were. "preference" rows (a prompt
# with a chosen and a rejected answer, see pairs.py) normalise to a Pair, not an Example.
FORMATS: tuple[FormatName, ...] = ("alpaca", "prompt_completion", "text", "messages", "sharegpt", "preference")
SFT_FORMATS: tuple[FormatName, ...] = FORMATS[:5]

SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
CHAT_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    """One trainable row in normal form. ``messages`` for chats, ``text`` for raw text."""

    messages: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    fmt: str = ""

    @property
    def is_chat(self) -> bool:
        return self.text is None

    def as_message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    @property
    def prompt_text(self) -> str:
        """The user side, for duplicate and leakage checks."""
        if self.text is not None:
            return self.text
        return "\n".join(c for r, c in self.messages if r != "assistant")

    @property
    def answer_text(self) -> str:
        if self.text is not None:
            return self.text
        return "\n".join(c for r, c in self.messages if r == "assistant")


class RowShapeError(ValueError):
    """A row has a known shape but a bad field; the message names the field and the fix."""


def detect_row_format(row: Any, column_map: Mapping[str, str] | None = None) -> FormatName | None:
    """The format a single row is in, or None when its keys match none (then a column map is needed)."""
    if type(row) is not dict and not isinstance(row, Mapping):
        return None
    if column_map and column_map.get("prompt") in row and column_map.get("answer") in row:
        return "prompt_completion"
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


def as_text(value: Any, field_name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowShapeError(f"field '{field_name}' should be text but is {type(value).__name__}")
    return value


def chat_turns(turns: Any, field_name: str, role_key: str, content_key: str, role_map: Mapping[str, str]) -> list[tuple[str, str]]:
    if not isinstance(turns, list):
        raise RowShapeError(f"field '{field_name}' should be a list of turns but is {type(turns).__name__}")
    out: list[tuple[str, str]] = []
    for i, turn in enumerate(turns):
        if type(turn) is not dict and not isinstance(turn, Mapping):
            raise RowShapeError(f"{field_name}[{i}] should be an object with '{role_key}' and '{content_key}'")
        if role_key not in turn:
            raise RowShapeError(f"{field_name}[{i}] has no '{role_key}'")
        role = turn[role_key]
        if not isinstance(role, str) or role.lower() not in role_map:
            raise RowShapeError(f"{field_name}[{i}] has unknown role {role!r} (expected one of {', '.join(sorted(role_map))})")
        out.append((role_map[role.lower()], as_text(turn.get(content_key), f"{field_name}[{i}].{content_key}")))
    return out


def to_example(row: Any, fmt: FormatName | None = None, column_map: Mapping[str, str] | None = None) -> Example:
    """Normalise one row. Raises RowShapeError with a message a user can act on."""
    fmt = fmt or detect_row_format(row, column_map)
    if fmt is None:
        keys = ", ".join(sorted(map(str, row))) if isinstance(row, Mapping) else type(row).__name__
        raise RowShapeError(
            f"row matches no known format (has: {keys}); map its columns to prompt/answer in the column-mapping dialog"
        )
    if column_map and column_map.get("prompt") in row and column_map.get("answer") in row:
        turns = []
        system_col = column_map.get("system")
        if system_col and row.get(system_col):
            turns.append(("system", as_text(row[system_col], system_col)))
        turns.append(("user", as_text(row[column_map["prompt"]], column_map["prompt"])))
        turns.append(("assistant", as_text(row[column_map["answer"]], column_map["answer"])))
        return Example(messages=tuple(turns), fmt="prompt_completion")
    if fmt == "preference":
        raise RowShapeError(
            "this row is a preference pair (chosen/rejected); supervised fine-tuning needs rows with one answer")
    if fmt == "messages":
        return Example(messages=tuple(chat_turns(row["messages"], "messages", "role", "content", {r: r for r in CHAT_ROLES})), fmt=fmt)
    if fmt == "sharegpt":
        return Example(messages=tuple(chat_turns(row["conversations"], "conversations", "from", "value", SHAREGPT_ROLES)), fmt=fmt)
    if fmt == "alpaca":
        instruction = as_text(row.get("instruction"), "instruction")
        extra = as_text(row.get("input"), "input")
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        turns = []
        if row.get("system"):
            turns.append(("system", as_text(row["system"], "system")))
        turns += [("user", prompt), ("assistant", as_text(row.get("output"), "output"))]
        return Example(messages=tuple(turns), fmt=fmt)
    if fmt == "prompt_completion":
        prompt = row["prompt"]
        completion = row["completion"]
        # TRL's conversational prompt/completion: lists of messages on each side.
        if isinstance(prompt, list) and isinstance(completion, list):
            turns = chat_turns(prompt, "prompt", "role", "content", {r: r for r in CHAT_ROLES})
            turns += chat_turns(completion, "completion", "role", "content", {r: r for r in CHAT_ROLES})
            return Example(messages=tuple(turns), fmt=fmt)
        return Example(messages=(("user", as_text(prompt, "prompt")), ("assistant", as_text(completion, "completion"))), fmt=fmt)
    if fmt == "text":
        return Example(text=as_text(row["text"], "text"), fmt=fmt)
    raise RowShapeError(f"unsupported format {fmt}")
