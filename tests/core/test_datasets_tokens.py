"""The fast token path must agree with ``render_example`` exactly, and the token findings must
say what truncation will really do."""

from __future__ import annotations

import datasets_helpers
import pytest
from datasets_helpers import write_jsonl

from studio.core.datasets.fastrender import ChatRenderer, TokenCounts, render_batch, token_counts
from studio.core.datasets.formats import Example
from studio.core.datasets.render import render_example
from studio.core.datasets.scan import scan
from studio.core.datasets.validate import validate

smol_tokenizer = datasets_helpers.smol_tokenizer
smol_tokenizer_dir = datasets_helpers.smol_tokenizer_dir


def chat(*turns: tuple[str, str]) -> Example:
    return Example(messages=tuple(turns), fmt="messages")


EXAMPLES = [
    chat(("user", "What is 2+2?"), ("assistant", "4.")),
    chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")),
    chat(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),
    chat(("user", "emoji at the edges"), ("assistant", "😀 start and end 🎉")),
    chat(("user", "  leading spaces"), ("assistant", "\n\nleading newlines and trailing ones\n\n")),
    chat(("user", "trailing spaces  "), ("assistant", "ends with spaces   ")),
    chat(("user", "empty answer"), ("assistant", "")),
    chat(("user", "special token text"), ("assistant", "say <|im_end|> literally")),
    chat(("user", "中文问题"), ("assistant", "中文回答。")),
    chat(("assistant", "I speak first"), ("user", "ok")),
    chat(("user", "one"), ("user", "two"), ("assistant", "three")),
    chat(("user", "ends with the user"), ("assistant", "x"), ("user", "?")),
    chat(("user", "no answer at all")),
    Example(text="Plain text row.", fmt="text"),
    Example(text="", fmt="text"),
    Example(text="tab\tand\nnewline 😀", fmt="text"),
    chat(("user", "long " * 40), ("assistant", "answer " * 30)),
]


def _slow(ex: Example, tok, max_len: int) -> TokenCounts:
    r = render_example(ex, tok, max_len)
    return TokenCounts(r.full_length, r.trained_tokens_full, r.trained_tokens)


@pytest.mark.parametrize("max_len", [4, 12, 30, 512])
def test_token_counts_equal_render_example(smol_tokenizer, max_len):
    fast = token_counts(EXAMPLES, smol_tokenizer, max_len)
    assert fast == [_slow(e, smol_tokenizer, max_len) for e in EXAMPLES]


def test_shortcut_is_really_taken_for_the_bundled_template(smol_tokenizer):
    renderer = ChatRenderer(smol_tokenizer)
    assert renderer.shortcut
    for ex in EXAMPLES[:4]:
        renderer.text_and_spans(ex)
    assert all(plan is not None for plan in renderer._plans.values())


@pytest.mark.parametrize("max_len", [8, 512])
def test_render_batch_equals_render_example(smol_tokenizer, max_len):
    assert render_batch(EXAMPLES, smol_tokenizer, max_len) == [render_example(e, smol_tokenizer, max_len) for e in EXAMPLES]


def _fresh(smol_tokenizer_dir, template: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("shown", ["m['content'] | trim | upper", "m['content'] | trim('. ')",
                                   "m['content'] | replace('a', 'b')", "m['content'].split()[0]"])
def test_content_sensitive_template_takes_the_exact_path(smol_tokenizer_dir, shown):
    # A bare ``| trim`` is planned (see test_fastrender_templates); anything beyond it is not.
    tok = _fresh(smol_tokenizer_dir, (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ " + shown + " }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ))
    renderer = ChatRenderer(tok)
    assert not renderer.shortcut
    assert token_counts(EXAMPLES, tok, 16, renderer=renderer) == [_slow(e, tok, 16) for e in EXAMPLES]


def test_a_template_that_hides_its_content_dependence_is_caught_by_sampling(smol_tokenizer_dir):
    tok = _fresh(smol_tokenizer_dir, (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{{ m['content'] if m['content'] != 'x' else 'REPLACED WITH MANY MORE WORDS' }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ))
    examples = [chat(("user", "q"), ("assistant", "x")), *EXAMPLES]
    renderer = ChatRenderer(tok)
    assert renderer.shortcut  # the pattern check cannot see this one...
    got = token_counts(examples, tok, 64, renderer=renderer)
    assert got == [_slow(e, tok, 64) for e in examples]  # ...but the sample check does
    assert not renderer.shortcut


def test_template_that_refuses_a_role_order_is_an_error_finding(smol_tokenizer_dir, tmp_path):
    tok = _fresh(smol_tokenizer_dir, (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ))
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello."}]},
        {"messages": [{"role": "assistant", "content": "me first."}, {"role": "user", "content": "ok"},
                      {"role": "assistant", "content": "fine."}]},
    ])
    report = validate(scan(path), tokenizer=tok, max_len=64)
    err = next(f for f in report.findings if f.code == "tokens.template_error")
    assert err.severity == "error" and err.lines == [2] and "alternate" in err.message


def test_truncation_findings_match_what_training_keeps(smol_tokenizer, tmp_path):
    long_prompt = "word " * 300
    rows = [
        {"instruction": "short", "output": "fine."},
        {"instruction": "short", "output": "long answer " * 200},          # truncated, still trains
        {"instruction": long_prompt, "output": "lost answer."},           # answer cut away entirely
    ]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    report = validate(scan(path), tokenizer=smol_tokenizer, max_len=128)
    by_code = {f.code: f for f in report.findings}
    assert by_code["tokens.truncated"].lines == [2, 3]
    assert by_code["tokens.truncated"].severity == "warning"
    assert by_code["tokens.no_trained_tokens"].lines == [3]
    assert by_code["tokens.no_trained_tokens"].severity == "error"
    assert report.exit_code == 1
    tokens = report.stats["tokens"]
    assert tokens["cutoff"] == 128 and 128 in tokens["edges"] and sum(tokens["counts"]) == 3
    # the same rows through the trainer's own renderer
    from studio.core.datasets.formats import to_example

    kept = [render_example(to_example(r), smol_tokenizer, 128).trained_tokens for r in rows]
    assert [k == 0 for k in kept] == [False, False, True]


def test_duplicate_rows_are_tokenized_once_but_all_reported(smol_tokenizer, tmp_path):
    row = {"instruction": "word " * 200, "output": "x."}
    path = write_jsonl(tmp_path / "d.jsonl", [row, {"instruction": "a", "output": "b."}, row, row])
    report = validate(scan(path), tokenizer=smol_tokenizer, max_len=64, batch=2)
    assert next(f for f in report.findings if f.code == "tokens.no_trained_tokens").lines == [1, 3, 4]
    assert sum(report.stats["tokens"]["counts"]) == 4


def _rows_for_pipeline(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        if i % 7 == 0:
            rows.append({"instruction": "long " * (40 + i % 30), "output": f"cut {i}."})
        elif i % 11 == 0:
            rows.append({"instruction": "same", "output": "same."})
        else:
            rows.append({"instruction": f"q{i}", "output": f"answer {i}."})
    return rows


def test_tokenizing_during_the_scan_gives_the_same_report(smol_tokenizer, tmp_path):
    from studio.core.datasets.pipeline import check_files

    path = write_jsonl(tmp_path / "p.jsonl", _rows_for_pipeline(4500))
    piped = check_files(path, tokenizer=smol_tokenizer, max_len=40)          # counts while scanning
    after = validate(scan(path), tokenizer=smol_tokenizer, max_len=40)       # counts after the scan
    assert piped.token_checked and after.token_checked
    assert [(f.code, f.lines) for f in piped.findings] == [(f.code, f.lines) for f in after.findings]
    assert piped.stats["tokens"] == after.stats["tokens"]
    assert "tokens.no_trained_tokens" in {f.code for f in piped.findings}


def test_token_checks_can_be_stopped(smol_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", _rows_for_pipeline(3000))
    progress = []
    report = validate(scan(path), tokenizer=smol_tokenizer, max_len=40, batch=500,
                      on_progress=lambda done, total: progress.append(done), should_stop=lambda: len(progress) >= 2)
    assert report.stopped and not report.token_checked
    assert progress[:2] == [500, 1000]
