"""The template plan must reproduce each family's chat template exactly, the trimming ones too.

Llama-3 and Gemma templates emit ``message['content'] | trim``; the plan strips those contents
itself instead of running Jinja per row. These tests hold every zoo template (and the templates a
user can pick for a base model) against real Jinja rendering on contents chosen to break that:
whitespace of every kind at the edges, whitespace-only and empty contents, template syntax, the
plan's own placeholder text, special tokens.
"""

from __future__ import annotations

import random

import pytest

from studio.core.datasets.fastrender import ChatRenderer, TokenCounts, render_batch, token_counts
from studio.core.datasets.formats import Example
from studio.core.datasets.render import _assistant_spans, render_example
from studio.core.datasets.templates import TEMPLATES

FAMILIES = ("llama3", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
TRIMMING = ("llama3", "gemma2", "gemma3")
STRICT = ("mistral", "gemma2", "gemma3", "gemma")   # templates that want user/assistant to alternate

# Phi-3 appends eos only without a generation prompt, so an earlier turn rendered alone is not a
# prefix of the whole conversation: those rows are rendered by Jinja (render_example finds the content).
UNPLANNED = {"phi3": {("user", "assistant", "user", "assistant"), ("assistant", "user")}}

HOSTILE = [
    "plain words.", "  leading spaces", "trailing spaces  ", "\n\nnewlines at both ends\n\n", "\t tab, space \t",
    "\u3000ideographic space\u3000", "\xa0no-break space\xa0", "\u2028line\u2029", "\x1c\x1d\x1e\x1fseps\x85",
    "\u200bzero width (not whitespace)\u200b", "\r\ncrlf\r\n", "", " ", "\n", " \n\t ", "\u3000", "\x0b\x0c",
    "inner\n\n  newlines \n kept", "{{ messages }}", "{% if true %}x{% endif %}", "{# comment #}", "{{- '\\n' -}}",
    "\ue000", "\ue0000Aa#\ue001", " \n\ue0001Aa####\ue001\n ", "\t \u3000\ue0002Aa#####\ue001 \r\n\t",
    "'quotes' \"and\" \\backslash", "😀 emoji 🎉", "中文回答。", "e\u0301", "x", ".",
]


def _specials(tok) -> list[str]:
    return [t.content for t in tok.backend_tokenizer.get_added_tokens_decoder().values()]


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_templates")


@pytest.fixture(scope="module")
def zoo(zoo_root) -> dict:
    from _zoo import make_tokenizer

    return {family: make_tokenizer(family, zoo_root / family) for family in FAMILIES}


def _with_template(zoo_root, family: str, template: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo_root / family)
    tok.chat_template = template
    return tok


def _rows(rnd: random.Random, strict: bool, specials: list[str]) -> list[Example]:
    """Every hostile content in every position of every role order, then random mixes."""
    orders = [("user", "assistant"), ("system", "user", "assistant"), ("user", "assistant", "user", "assistant"),
              ("user",), ("system", "user")]
    if not strict:
        orders += [("assistant", "user"), ("user", "user", "assistant"), ("system", "assistant")]
    atoms = HOSTILE + specials + [s + "\n" for s in specials] + [" " + s for s in specials]
    rows = []
    for roles in orders:
        for k in range(len(roles)):
            for h in atoms:
                contents = [f"turn {j} says hi" for j in range(len(roles))]
                contents[k] = h
                rows.append(tuple(zip(roles, contents, strict=True)))
        for _ in range(40):
            rows.append(tuple((r, "".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 4)))) for r in roles))
    return [Example(messages=m, fmt="messages") for m in rows]


def _slow(ex: Example, tok, max_len: int) -> TokenCounts:
    r = render_example(ex, tok, max_len)
    return TokenCounts(r.full_length, r.trained_tokens_full, r.trained_tokens)


def _check_exact(tok, examples: list[Example], max_len: int = 24) -> ChatRenderer:
    """Plan text and spans equal Jinja's on every row, and the counts equal ``render_example``'s
    without the sample check ever switching the plan off."""
    renderer = ChatRenderer(tok)
    start = renderer.shortcut
    for ex in examples:
        assert renderer.layout(ex)[:2] == _assistant_spans(ex, tok), ex
    got = token_counts(examples, tok, max_len, renderer=ChatRenderer(tok))
    assert got == [_slow(ex, tok, max_len) for ex in examples]
    assert render_batch(examples, tok, max_len) == [render_example(ex, tok, max_len) for ex in examples]
    checked = ChatRenderer(tok)
    token_counts(examples, tok, max_len, renderer=checked)
    assert checked.shortcut == start   # nothing disagreed
    return renderer


def _planned(renderer: ChatRenderer, examples: list[Example]) -> list[bool]:
    return [bool(renderer.layout(ex)[2]) for ex in examples]   # boundaries are known only on the plan path


@pytest.mark.parametrize("family", FAMILIES)
def test_every_zoo_template_is_planned_and_exact_on_hostile_contents(zoo, family):
    tok = zoo[family]
    examples = _rows(random.Random(FAMILIES.index(family)), family in STRICT, _specials(tok))
    renderer = _check_exact(tok, examples)
    assert renderer.shortcut
    assert {roles for roles, plan in renderer._plans.items() if plan is None} == UNPLANNED.get(family, set())
    # The plan carries every row that has something besides whitespace in each content; only
    # empty or (where trimmed) whitespace-only contents go through Jinja.
    planned = _planned(renderer, examples)
    for ex, p in zip(examples, planned, strict=True):
        if renderer._plans[tuple(r for r, _ in ex.messages)] is not None and all(c.strip() for _, c in ex.messages):
            assert p, ex
    assert any(plan is not None and any(plan.trimmed) for plan in renderer._plans.values()) == (family in TRIMMING)


def test_gemma_keeps_the_system_text_untrimmed_and_trims_the_turns(zoo):
    renderer = ChatRenderer(zoo["gemma3"])
    ex = Example(messages=(("system", " sys \n"), ("user", " q "), ("assistant", "\ta\n")), fmt="messages")
    renderer.layout(ex)
    assert renderer._plans[("system", "user", "assistant")].trimmed == (False, True, True)


@pytest.mark.parametrize("choice", sorted(TEMPLATES))
def test_templates_a_user_can_pick_are_planned_and_exact(zoo, zoo_root, choice):
    family = {"chatml": "qwen3", "llama3": "llama3", "gemma": "gemma3", "mistral": "mistral", "alpaca": "phi3"}[choice]
    tok = _with_template(zoo_root, family, TEMPLATES[choice])
    examples = _rows(random.Random(7), choice in STRICT, _specials(tok))
    renderer = _check_exact(tok, examples)
    assert renderer.shortcut
    assert sum(_planned(renderer, examples)) > len(examples) // 2


LLAMA3_TURN = "'<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + "


@pytest.mark.parametrize("shown", [
    "m['content'] | trim + ' / ' + m['content']",       # trimmed and raw: the raw copy lands in a literal
    "(m['content'] | trim)[1:]",                          # cut after trimming: the placeholder is not found
    "m['content'][1:] | trim",                            # cut before trimming: the same
    "(m['content'] | trim) + (m['content'] | trim)",      # the content twice
    "m['content'] | upper",                               # no pattern names it; the placeholder's letters do
])
def test_contents_the_plan_cannot_reproduce_go_through_jinja(zoo, zoo_root, shown):
    tok = _with_template(zoo_root, "llama3", (
        "{{- bos_token }}{%- for m in messages %}{{- " + LLAMA3_TURN + shown + " + '<|eot_id|>' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"))
    examples = _rows(random.Random(3), False, _specials(tok))[::3]
    renderer = _check_exact(tok, examples)
    assert not any(_planned(renderer, examples))


def test_a_template_that_tests_trimmed_contents_for_truth_renders_blank_ones_through_jinja(zoo, zoo_root):
    # A whitespace-only content is truthy as given but empty once trimmed: the plan, built from
    # non-empty placeholders, would keep the turn that Jinja drops.
    tok = _with_template(zoo_root, "llama3", (
        "{{- bos_token }}{%- for m in messages %}{%- if m['content'] | trim %}"
        "{{- " + LLAMA3_TURN + "m['content'] | trim + '<|eot_id|>' }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"))
    examples = _rows(random.Random(5), False, _specials(tok))
    renderer = _check_exact(tok, examples)
    planned = _planned(renderer, examples)
    assert renderer.shortcut and sum(planned) > len(examples) // 2
    assert not any(p for ex, p in zip(examples, planned, strict=True) if not all(c.strip() for _, c in ex.messages))
