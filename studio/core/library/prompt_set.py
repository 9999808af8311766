"""Saved prompt sets, run against the base and several adapters at once, scored.

A prompt set is a JSONL file of ``{"prompt": ..., "expected": ...}`` rows (``expected`` optional).
Rows in any chat shape the studio trains on (messages, sharegpt, alpaca, prompt/completion) are
accepted too, so a run's own eval file can be used as is: the last assistant turn becomes the
expected answer and the turns before it the prompt.

Two scores per column, both against ``expected``: the eval loss of the expected answer (rendered
and masked like training's eval rows, averaged over answer tokens, so it is comparable with the
run's eval loss) and exact match of the generated text (surrounding whitespace ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from studio.core.errors import StudioError
from studio.core.library.playground import AdapterRef, Generation, GenerationSettings, Playground, ShouldStop

MAX_ITEMS = 10_000


@dataclass(frozen=True)
class PromptItem:
    messages: tuple[tuple[str, str], ...]  # the conversation up to the answer (ends with a user turn)
    expected: str | None
    source: str
    line: int

    @property
    def prompt(self) -> str:
        """The last user turn, for display."""
        users = [c for r, c in self.messages if r == "user"]
        return users[-1] if users else self.messages[-1][1]


def _item_from_row(data: Any, source: str, line: int) -> PromptItem:
    from studio.core.datasets.formats import RowShapeError, to_example

    if not isinstance(data, Mapping):
        raise StudioError(f"Each row must be an object like {{\"prompt\": \"...\", \"expected\": \"...\"}}; "
                          f"this one is a {type(data).__name__}.", path=source, line=line)
    if "prompt" in data and "completion" not in data:
        prompt, expected = data["prompt"], data.get("expected")
        expected = None if expected == "" else expected  # an empty CSV cell means "no expected answer"
        if not isinstance(prompt, str) or not prompt.strip():
            raise StudioError("'prompt' must be non-empty text.", path=source, line=line)
        if expected is not None and not isinstance(expected, str):
            raise StudioError(f"'expected' must be text (got {type(expected).__name__}); quote numbers, e.g. \"42\".",
                              path=source, line=line)
        return PromptItem((("user", prompt),), expected, source, line)
    try:
        example = to_example(data)
    except RowShapeError as err:
        raise StudioError(f"This row is not a prompt: {err}. Use {{\"prompt\": \"...\", \"expected\": \"...\"}}.",
                          path=source, line=line) from None
    if not example.is_chat:
        raise StudioError("A plain 'text' row has no prompt to answer. Use {\"prompt\": \"...\", \"expected\": \"...\"}.",
                          path=source, line=line)
    turns = list(example.messages)
    expected = None
    if turns and turns[-1][0] == "assistant":
        expected = turns.pop()[1]
    if not turns or turns[-1][0] != "user":
        raise StudioError("The conversation has no user turn before its answer, so there is nothing to prompt with.",
                          path=source, line=line)
    return PromptItem(tuple(turns), expected, source, line)


def load_prompt_set(path: Path | str) -> list[PromptItem]:
    """Read a prompt set; every problem is a StudioError naming the file and line to fix."""
    from studio.core.datasets.load import read_rows

    path = Path(path)
    rows = read_rows(path)
    if not rows:
        raise StudioError("The prompt set is empty. Add one JSON object per line: {\"prompt\": \"...\", "
                          "\"expected\": \"...\"}.", path=path)
    if len(rows) > MAX_ITEMS:
        raise StudioError(f"The prompt set has {len(rows)} rows; keep it under {MAX_ITEMS} (it runs every row "
                          "through every column).", path=path)
    return [_item_from_row(r.data, r.source, r.line) for r in rows]


def exact_match(generated: str, expected: str) -> bool:
    return generated.strip() == expected.strip()


@dataclass
class ColumnResult:
    """One column's outputs over the prompt set and its scores (``None`` when no row has ``expected``)."""

    label: str
    adapter_dir: str | None  # None: the base model
    generations: list[Generation] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_tokens: int = 0
    matches: int = 0
    scored: int = 0

    @property
    def outputs(self) -> list[str]:
        return [g.text for g in self.generations]

    @property
    def eval_loss(self) -> float | None:
        return self.loss_sum / self.loss_tokens if self.loss_tokens else None

    @property
    def exact_match(self) -> float | None:
        return self.matches / self.scored if self.scored else None

    @property
    def stop_share(self) -> float | None:
        """Share of answers that ended with EOS before the token limit ("will it stop?")."""
        from studio.core.library.stopping import eos_share

        return eos_share(self.generations)

    @property
    def tokens_per_s(self) -> float:
        t = sum(g.total_s for g in self.generations)
        return sum(g.new_tokens for g in self.generations) / t if t > 0 else 0.0

    def to_dict(self) -> dict:
        return {"label": self.label, "adapter": self.adapter_dir, "eval_loss": self.eval_loss,
                "exact_match": self.exact_match, "matches": self.matches, "scored": self.scored,
                "tokens_per_s": self.tokens_per_s, "stop_share": self.stop_share, "outputs": self.outputs,
                "generations": [g.to_dict() for g in self.generations]}


@dataclass
class CompareReport:
    base: str
    settings: GenerationSettings
    items: list[PromptItem]
    columns: list[ColumnResult]
    stopped: bool = False

    def to_dict(self) -> dict:
        return {
            "base": self.base, "settings": self.settings.to_dict(), "stopped": self.stopped,
            "prompts": [{"prompt": it.prompt, "expected": it.expected, "source": it.source, "line": it.line}
                        for it in self.items],
            "columns": [c.to_dict() for c in self.columns],
        }


@dataclass(frozen=True)
class StreamEvent:
    """What a running comparison reports: a column starts a prompt, text arrives, the answer is done."""

    kind: Literal["start", "chunk", "done"]
    column: int
    item: int
    text: str = ""
    generation: Generation | None = None
    exact: bool | None = None


Column = AdapterRef | None


def run_columns(
    playground: Playground,
    items: Sequence[PromptItem],
    columns: Sequence[Column],
    settings: GenerationSettings | None = None,
    *,
    on_event: Callable[[StreamEvent], None] | None = None,
    should_stop: ShouldStop | None = None,
    score: bool = True,
) -> CompareReport:
    """Every prompt through every column (``None`` = the base) with the same settings and seed.

    All adapters are loaded first, so a misfit fails before any time is spent generating.
    Columns run one after another on the one loaded base; a column's answers stream through
    ``on_event`` as they are produced.
    """
    settings = (settings or GenerationSettings()).checked()
    emit = on_event or (lambda _e: None)
    for col in columns:
        if col is not None:
            playground.ensure_adapter(col)
    results = [ColumnResult(label="base" if c is None else c.label, adapter_dir=None if c is None else str(c.adapter_dir))
               for c in columns]
    report = CompareReport(str(playground.base_path), settings, list(items), results)
    for ci, (col, res) in enumerate(zip(columns, results, strict=True)):
        for ii, item in enumerate(items):
            if should_stop is not None and should_stop():
                report.stopped = True
                return report
            emit(StreamEvent("start", ci, ii))
            gen = playground.generate(item.messages, col, settings,
                                      on_token=lambda text, ci=ci, ii=ii: emit(StreamEvent("chunk", ci, ii, text)),
                                      should_stop=should_stop)
            res.generations.append(gen)
            exact = None
            if score and item.expected is not None and gen.finish != "stopped":
                loss, n = playground.answer_loss(item.messages, item.expected, col)
                res.loss_sum, res.loss_tokens = res.loss_sum + loss, res.loss_tokens + n
                exact = exact_match(gen.text, item.expected)
                res.matches += int(exact)
                res.scored += 1
            emit(StreamEvent("done", ci, ii, gen.text, gen, exact))
    return report


__all__ = ["ColumnResult", "CompareReport", "PromptItem", "StreamEvent", "exact_match", "load_prompt_set", "run_columns"]
