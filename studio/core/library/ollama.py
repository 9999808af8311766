"""Ollama's ``Modelfile`` for an exported GGUF: the chat template in Ollama's Go-template syntax and
the stop tokens, so ``ollama create NAME -f Modelfile`` chats like the trained model.

Ollama does not run a model's Jinja chat template; it needs a Go template. Rather than keep one
hand-written template per family, the model's own template is *measured*: conversations with marker
contents are rendered through ``apply_chat_template``, and what stands around each marker is the text
around a system, user or assistant turn and the generation prompt. Those pieces are written into one
fixed Go-template shape. The translation is then proven: the same conversations are rendered through
that Go template (``render_go_template``, the subset of Go's text/template the shape uses) and must
equal ``apply_chat_template`` exactly — with the system turn, without it, multi-turn. A template whose
turns do not decompose this way (Mistral's, which folds the system prompt into the last user turn;
Gemma's, which has no system role and so is proven without one) gets no TEMPLATE line rather than a
wrong one, and the Modelfile says so.

The GGUF's own ``add_bos_token`` decides the start: llama.cpp adds the BOS token itself when the GGUF
says so, so the template must not write it again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MODELFILE = "Modelfile"

_SYS, _U1, _A1, _U2 = "STUDIOSYSTEMXQ", "STUDIOUSERONEXQ", "STUDIOANSWERXQ", "STUDIOUSERTWOXQ"


@dataclass(frozen=True)
class Turns:
    """The text around each turn of a chat template; ``system`` is None when it has no system role."""

    start: str  # before the first turn (BOS text, if the template writes it)
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # the generation prompt after the last turn
    system: tuple[str, str] | None
    default_system: str | None  # the system text the template writes when a conversation has none


def _render(tokenizer: Any, messages: list[dict], generation: bool) -> str | None:
    try:
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False)
    except Exception:  # a template that refuses a role or an order: that shape is unsupported
        return None
    return out if isinstance(out, str) else None


def _around(text: str | None, *markers: str) -> list[str] | None:
    """``text`` cut at each marker in order: the pieces before, between and after; None if one is missing."""
    if text is None:
        return None
    pieces, rest = [], text
    for m in markers:
        if rest.count(m) != 1:
            return None
        before, rest = rest.split(m)
        pieces.append(before)
    return [*pieces, rest]


def measure_turns(tokenizer: Any, *, strip_eos: bool = False) -> Turns | None:
    """Decompose the tokenizer's chat template into the text around each turn, or None.

    ``strip_eos``: some templates (Phi-3's) end a conversation that is not waiting for an answer with
    the EOS text; Ollama always renders for an answer, so that tail is dropped before measuring.
    """
    user = {"role": "user", "content": _U1}
    answer = {"role": "assistant", "content": _A1}
    eos = str(getattr(tokenizer, "eos_token", "") or "")

    def closed(messages: list[dict]) -> str | None:
        out = _render(tokenizer, messages, False)
        if strip_eos and out is not None and eos and out.endswith(eos):
            out = out[: -len(eos)]
        return out

    one = _around(closed([user]), _U1)
    two = _around(closed([user, answer]), _U1, _A1)
    three = _around(_render(tokenizer, [user, answer, {"role": "user", "content": _U2}], True), _U1, _A1, _U2)
    gen = _around(_render(tokenizer, [user], True), _U1)
    if not (one and two and three and gen):
        return None
    head, user_end = one
    if two[0] != head or not two[1].startswith(user_end) or not gen[1].startswith(user_end):
        return None
    assistant_start, assistant_end = two[1][len(user_end):], two[2]
    user_start = three[2][len(assistant_end):] if three[2].startswith(assistant_end) else None
    if user_start is None or not head.endswith(user_start):
        return None
    start, generation = head[: len(head) - len(user_start)], gen[1][len(user_end):]
    system = default_system = None
    with_system = _around(closed([{"role": "system", "content": _SYS}, user]), _SYS, _U1)
    if with_system and with_system[1].endswith(user_start):
        lead, sys_end = with_system[0], with_system[1][: len(with_system[1]) - len(user_start)]
        for bos in dict.fromkeys([str(getattr(tokenizer, "bos_token", "") or ""), ""]):
            if lead.startswith(bos) and start.startswith(bos):
                sys_start = lead[len(bos):]
                system = (sys_start, sys_end)
                # A template that writes a default system turn when there is none (SmolLM2's does).
                rest = start[len(bos):]
                if rest and rest.startswith(sys_start) and rest.endswith(sys_end):
                    default_system = rest[len(sys_start): len(rest) - len(sys_end)]
                    start = bos
                break
    return Turns(start, (user_start, user_end), (assistant_start, assistant_end), generation, system, default_system)


def go_template(turns: Turns, *, with_system: bool, write_start: bool) -> str:
    """The Go template for ``turns`` in the one shape ``render_go_template`` understands."""
    branches = []
    if with_system and turns.system is not None:
        branches.append(("system", turns.system))
    branches += [("user", turns.user), ("assistant", turns.assistant)]
    body = "".join(f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{a}{{{{ .Content }}}}{b}'
                   for i, (role, (a, b)) in enumerate(branches))
    return f"{turns.start if write_start else ''}{{{{ range .Messages }}}}{body}{{{{ end }}}}{{{{ end }}}}{turns.generation}"


# ---------------------------------------------------------------- the Go template subset, rendered


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def render_go_template(template: str, messages: Sequence[dict]) -> str:
    """Render ``template`` as Go's text/template would, for the constructs Ollama chat templates of
    this shape use: ``range .Messages``, ``if``/``else if``/``else`` on ``eq .Role "x"``, ``.Content``,
    ``.Role``, ``end`` and the ``{{-``/``-}}`` whitespace trims. Anything else raises ValueError."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        if tokens and tokens[-1][0] == "trim-next":
            tokens.pop()
            text = text.lstrip()
        tokens.append(("text", text))
        tokens.append(("action", m.group(2)))
        if m.group(3):
            tokens.append(("trim-next", ""))
        pos = m.end()
    tail = template[pos:]
    if tokens and tokens[-1][0] == "trim-next":
        tokens.pop()
        tail = tail.lstrip()
    tokens.append(("text", tail))

    def parse(i: int, stop: tuple[str, ...]) -> tuple[list, int, str]:
        nodes: list = []
        while i < len(tokens):
            kind, value = tokens[i]
            i += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            head = value.split()[0] if value else ""
            if value in stop or (head in ("else", "end") and value.startswith(stop)):
                return nodes, i, value
            if value == ".Content" or value == ".Role":
                nodes.append(("field", value[1:].lower()))
            elif value == "range .Messages":
                body, i, _ = parse(i, ("end",))
                nodes.append(("range", body))
            elif head == "if":
                branches, i = parse_if(value, i)
                nodes.append(("if", branches))
            else:
                raise ValueError(f"unsupported template action {{{{ {value} }}}}")
        if stop:
            raise ValueError("unclosed template block")
        return nodes, i, ""

    def condition(expr: str) -> tuple[str, str]:
        m = re.fullmatch(r'eq \.Role "([^"]*)"', expr.strip())
        if not m:
            raise ValueError(f"unsupported condition {expr!r}")
        return ("role", m.group(1))

    def parse_if(value: str, i: int) -> tuple[list, int]:
        branches = []
        cond: tuple[str, str] | None = condition(value[2:])
        while True:
            body, i, ended = parse(i, ("else", "end"))
            branches.append((cond, body))
            if ended == "end":
                return branches, i
            cond = condition(ended[len("else if"):]) if ended.startswith("else if") else None

    def run(nodes: list, message: dict | None, out: list[str]) -> None:
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "field":
                if message is None:
                    raise ValueError(".Content outside range")
                out.append(str(message[node[1]]))
            elif node[0] == "range":
                for msg in messages:
                    run(node[1], msg, out)
            elif node[0] == "if":
                for cond, body in node[1]:
                    if cond is None or (message is not None and message["role"] == cond[1]):
                        run(body, message, out)
                        break

    tree, _, _ = parse(0, ())
    out: list[str] = []
    run(tree, None, out)
    return "".join(out)


# ---------------------------------------------------------------- the Modelfile


_PROBES = (
    [{"role": "user", "content": "Hi there"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another?"}],
)
_SYSTEM_PROBE = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Two plus two?"},
                 {"role": "assistant", "content": "{\"answer\": 4}"}, {"role": "user", "content": "And 3+3?"}]


def translate(tokenizer: Any, *, add_bos: bool) -> tuple[Turns, str, bool] | None:
    """(turns, Go template, whether system turns are kept) proven equal to ``apply_chat_template`` on
    probe conversations; None when no faithful translation exists."""
    for strip_eos in (False, True):
        turns = measure_turns(tokenizer, strip_eos=strip_eos)
        found = _proven(tokenizer, turns, add_bos=add_bos) if turns is not None else None
        if found is not None:
            return found
    return None


def _proven(tokenizer: Any, turns: Turns, *, add_bos: bool) -> tuple[Turns, str, bool] | None:
    bos = str(getattr(tokenizer, "bos_token", "") or "")
    # llama.cpp writes BOS itself when the GGUF says so: the template must not write it a second time.
    write_start = not (add_bos and bos and turns.start == bos)
    prefix = "" if write_start else bos
    for with_system in ((True, False) if turns.system is not None else (False,)):
        template = go_template(turns, with_system=with_system, write_start=write_start)
        probes = [*_PROBES, _SYSTEM_PROBE] if with_system else list(_PROBES)
        if all(_render(tokenizer, p, True) == prefix + render_go_template(template, _with_default(p, turns))
               for p in probes):
            return turns, template, with_system
    return None


def _with_default(messages: list[dict], turns: Turns) -> list[dict]:
    """What Ollama passes the template: its SYSTEM line becomes the first message when none is given."""
    if turns.default_system is not None and messages[0]["role"] != "system":
        return [{"role": "system", "content": turns.default_system}, *messages]
    return messages


def ollama_modelfile(tokenizer: Any, gguf_name: str, stop_tokens: Sequence[str], *, add_bos: bool = False) -> str:
    """A Modelfile for ``ollama create``: FROM, the proven TEMPLATE and SYSTEM, and stop tokens."""
    lines = [f"FROM ./{gguf_name}"]
    found = translate(tokenizer, add_bos=add_bos) if getattr(tokenizer, "chat_template", None) else None
    stops = list(stop_tokens)
    if found is None:
        lines.append("# This model's chat template has no faithful Go-template translation here (its turns do "
                     "not decompose into fixed text around each message); write TEMPLATE by hand from "
                     "tokenizer.chat_template in the GGUF.")
    else:
        turns, template, with_system = found
        lines.append(f'TEMPLATE """{template}"""')
        if turns.default_system is not None and with_system:
            lines.append(f'SYSTEM """{turns.default_system}"""')
        if not with_system:
            lines.append("# This template has no system role of its own; put instructions in the first message.")
        # Text that opens a turn must stop generation too: a model that starts a new turn has finished.
        marker = r"<[^<>\s]{2,40}>|\[/?[A-Z_]{2,12}\]"
        stops += re.findall(marker, turns.assistant[1])[:1] + re.findall(marker, turns.user[0])[:1]
    lines += [f'PARAMETER stop "{s}"' for s in dict.fromkeys(stops) if s]
    return "\n".join(lines) + "\n"


def stop_tokens(gen: Any, tokenizer: Any) -> list[str]:
    ids: list[int] = []
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    ids += eos if isinstance(eos, list) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    out = [tokenizer.convert_ids_to_tokens(int(i)) for i in dict.fromkeys(ids)]
    return [t for t in out if isinstance(t, str)]
