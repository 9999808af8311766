""""What the model sees": every character of the rendered row is trained, masked or cut — exactly
as the trainer's labels say — plus the small core pieces the Dataset pane relies on."""

from __future__ import annotations

import datasets_helpers
import pytest
from datasets_helpers import write_jsonl

from studio.core.config import RunConfig, apply_overrides
from studio.core.datasets.formats import Example
from studio.core.datasets.preview import segments, view_row
from studio.core.datasets.render import IGNORE_INDEX, Rendered, render_example
from studio.core.datasets.split import split_indices, split_sizes
from studio.core.datasets.tokenizer import load_tokenizer
from studio.core.datasets.validate import histogram
from studio.core.errors import StudioError

smol_tokenizer = datasets_helpers.smol_tokenizer
smol_tokenizer_dir = datasets_helpers.smol_tokenizer_dir

CHAT = Example(messages=(("user", "What is the capital of France?"), ("assistant", "Paris is the capital.")))


def _covers(text: str, segs) -> bool:
    return [s.start for s in segs[1:]] == [s.end for s in segs[:-1]] and segs[0].start == 0 and segs[-1].end == len(text)


def test_segments_follow_the_trainers_labels(smol_tokenizer):
    view = view_row(CHAT, smol_tokenizer, 512)
    rendered = render_example(CHAT, smol_tokenizer, 512)
    assert view.text == rendered.text and _covers(view.text, view.segments)
    assert "Paris is the capital." in view.text_of("trained")
    assert "capital of France" in view.text_of("masked") and "France" not in view.text_of("trained")
    assert view.text_of("cut") == ""
    trained_tokens = {s.token for s in view.segments if s.kind == "trained"}
    assert trained_tokens == {t for t, lab in enumerate(rendered.labels) if lab != IGNORE_INDEX}
    assert view.trained_tokens == len(trained_tokens) and view.kept_tokens == view.total_tokens
    assert view.masked_tokens == view.total_tokens - view.trained_tokens


def test_truncation_shows_as_cut_and_counts_the_lost_answer(smol_tokenizer):
    full = view_row(CHAT, smol_tokenizer, 512)
    short = view_row(CHAT, smol_tokenizer, full.total_tokens - 4)
    assert short.cut_tokens == 4 and short.segments[-1].kind == "cut"
    assert short.text.endswith(short.text_of("cut"))
    assert short.trained_full == full.trained_tokens and short.trained_tokens < full.trained_tokens
    assert _covers(short.text, short.segments)


def test_plain_text_rows_train_on_everything(smol_tokenizer):
    view = view_row(Example(text="Once upon a time."), smol_tokenizer, 64)
    assert view.text_of("trained") == view.text and view.masked_tokens == 0


def test_segments_handle_overlapping_and_empty_offsets():
    # A byte-level tokenizer may give two tokens one character; a post-processor's EOS has no text.
    rendered = Rendered(text="héllo", input_ids=[1, 2, 3, 4], labels=[IGNORE_INDEX, 2, 3, 4],
                        offsets=[(0, 2), (1, 2), (2, 5), (5, 5)], full_length=4, trained_tokens_full=3)
    segs = segments(rendered)
    assert [(s.start, s.end, s.kind) for s in segs] == [(0, 2, "masked"), (2, 5, "trained")]


def test_histogram_counts_a_row_of_exactly_the_max_length_as_fitting():
    h = histogram([10, 512, 600], cutoff=512)
    assert h["edges"][-2:] == [512, 601] and h["counts"][-1] == 1 and sum(h["counts"]) == 3
    fits = histogram([10, 64], cutoff=64)
    assert fits["edges"][-1] == 64 and sum(fits["counts"]) == 2   # nothing beyond: no overflow bin


def test_load_tokenizer_reads_a_folder_and_explains_a_missing_one(smol_tokenizer_dir, tmp_path):
    tok = load_tokenizer(smol_tokenizer_dir)
    assert tok.chat_template and tok.eos_token
    with pytest.raises(StudioError, match="Model folder not found"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="Could not load a tokenizer"):
        load_tokenizer(tmp_path / "empty")


def test_training_reads_unknown_columns_through_the_configured_column_map(smol_tokenizer, tmp_path):
    from studio.core.training.data import build_features

    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": f"Q{i}?", "reply": f"A{i}."} for i in range(4)])
    cfg = apply_overrides(RunConfig(), {"dataset.train": [str(path)], "dataset.eval_ratio": 0.0})
    with pytest.raises(StudioError, match="column-mapping"):
        build_features(cfg, smol_tokenizer)
    mapped = apply_overrides(cfg, {"dataset.column_map": {"prompt": "question", "answer": "reply"}})
    features = build_features(mapped, smol_tokenizer)
    assert len(features.train) == 4
    expected = render_example(Example(messages=(("user", "Q0?"), ("assistant", "A0."))), smol_tokenizer, 512)
    assert features.train[0] == {"input_ids": expected.input_ids, "labels": expected.labels}


@pytest.mark.parametrize("n", [0, 1, 2, 7, 215, 10_001])
@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.1, 0.5])
def test_split_sizes_match_the_drawn_split(n, ratio):
    train, held = split_indices(n, ratio, seed=3)
    assert split_sizes(n, ratio) == (len(train), len(held))


PAIR_ROW = {"prompt": "What is the plural of 'wolf'?", "chosen": '{"answer": "wolves"}',
            "rejected": "Hmm, I am not completely sure, maybe wolfs? Or not."}


def test_a_pair_renders_once_for_training_and_the_view_with_the_prompt_shared_and_every_answer_token_scored(
        smol_tokenizer):
    from studio.core.datasets.pairrender import render_pair
    from studio.core.datasets.pairs import to_pair
    from studio.core.datasets.preview import view_pair

    pair = to_pair(PAIR_ROW)
    rp = render_pair(pair, smol_tokenizer, 512)
    feature = rp.feature()
    for side in ("chosen", "rejected"):
        # Each side alone is exactly the supervised rendering of prompt + that side...
        assert rp.side(side).input_ids == render_example(pair.side(side), smol_tokenizer, 512).input_ids
        assert feature["prompt_ids"] + feature[f"{side}_ids"] == rp.side(side).input_ids
        # ...but the preference loss scores every answer token, the supervised mask's trailing newline too.
        assert rp.labels(side) == [IGNORE_INDEX] * len(feature["prompt_ids"]) + feature[f"{side}_ids"]
    assert smol_tokenizer.decode(feature["prompt_ids"]).endswith("assistant\n")
    view = view_pair(pair, smol_tokenizer, 512)
    assert view.usable and view.prompt.text == smol_tokenizer.decode(feature["prompt_ids"])
    assert {s.kind for s in view.prompt.segments} == {"masked"} and view.prompt.kept_tokens == len(feature["prompt_ids"])
    for side in ("chosen", "rejected"):
        part = view.side(side)
        assert _covers(part.text, part.segments) and part.text_of("trained") == part.text
        assert part.text == smol_tokenizer.decode(feature[f"{side}_ids"]) and PAIR_ROW[side] in part.text
        assert part.kept_tokens == part.trained_tokens == len(feature[f"{side}_ids"]) and part.cut_tokens == 0


def test_a_pair_cut_at_max_length_shows_what_each_side_keeps_and_a_pair_cut_into_its_prompt_is_skipped(
        smol_tokenizer):
    from studio.core.datasets.pairrender import render_pair
    from studio.core.datasets.pairs import to_pair
    from studio.core.datasets.preview import view_pair

    pair = to_pair(PAIR_ROW)
    full = view_pair(pair, smol_tokenizer, 512)
    n = full.prompt.kept_tokens
    cut = view_pair(pair, smol_tokenizer, n + 4)
    for side in ("chosen", "rejected"):
        part = cut.side(side)
        assert part.kept_tokens == 4 and part.cut_tokens == full.side(side).kept_tokens - 4
        assert part.text == full.side(side).text and part.segments[-1].kind == "cut"
        assert part.text_of("trained") == smol_tokenizer.decode(render_pair(pair, smol_tokenizer, n + 4).answer_ids(side))
    assert cut.usable and render_pair(pair, smol_tokenizer, n + 4).truncated
    into_prompt = view_pair(pair, smol_tokenizer, n - 2)
    assert not into_prompt.usable and into_prompt.chosen.kept_tokens == 0
    assert not render_pair(pair, smol_tokenizer, n - 2).usable
