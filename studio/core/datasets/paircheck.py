"""Dataset-wide checks for preference pairs: length bias, each side's truncation, and the stats.

Per-row pair findings (identical sides, an empty side, a leaked prompt) come from ``pairs.py``
during the scan; duplicates and leakage run in ``validate.py`` on the same keys as supervised rows.
What is left needs every pair at once or a tokenizer:

* **length bias** — preference trainers reward whatever tells chosen from rejected, and "longer"
  is the easiest tell there is: with chosen answers systematically longer the model learns to
  ramble. Warned when, over at least ``BIAS_MIN_PAIRS`` pairs, the mean chosen answer is
  ``BIAS_RATIO`` times the mean rejected one or longer, or the chosen answer is the longer one in at
  least ``BIAS_SHARE`` of the pairs. Lengths are answer characters, so the check needs no model.
* **a side cut away** — each side is rendered as its own chat (prompt + that side) through the chat
  template and cut to max length exactly like a supervised row (``TokenChecker``, the very counting
  the supervised check uses), so "cut" and "lost" mean what the trainer will do to that side.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from typing import TYPE_CHECKING

from studio.core.datasets.formats import Example
from studio.core.datasets.pairs import SIDES
from studio.core.datasets.scan import ScanResult

if TYPE_CHECKING:
    from studio.core.datasets.tokencheck import TokenChecker

BIAS_RATIO = 1.3
BIAS_SHARE = 0.7
BIAS_MIN_PAIRS = 20


class _Sides:
    """The pairs of a scan as a scan of sides, for ``TokenChecker.run``: row ``2i`` is pair ``i``'s
    chosen side, row ``2i + 1`` its rejected side."""

    def __init__(self, result: ScanResult) -> None:
        self.result = result

    def __len__(self) -> int:
        return 2 * len(self.result)

    def iter_examples(self, skip: Container[int] = ()) -> Iterator[tuple[int, Example]]:
        for i, pair in self.result.iter_pairs():
            for k, side in enumerate(SIDES):
                if 2 * i + k not in skip:
                    yield 2 * i + k, pair.side(side)


def side_checker(tokenizer, max_len: int, pairs: int) -> TokenChecker:
    from studio.core.datasets.tokencheck import TokenChecker, worth_a_process

    return TokenChecker(tokenizer, max_len, parallel=worth_a_process(rows=2 * pairs))


def side_tokens(checks, checker: TokenChecker, should_stop: Callable[[], bool] | None,
                on_progress) -> tuple[dict[int, tuple[int, int]], bool]:
    """Token findings per side; returns (row → (chosen tokens, rejected tokens), stopped)."""
    from studio.core.datasets.fastrender import TokenCounts

    try:
        outcomes, stopped = checker.run(_Sides(checks.r), should_stop, on_progress)
    finally:
        checker.close()
    max_len = checker.max_len
    lengths: dict[int, list[int]] = {}
    for j in sorted(outcomes):
        i, side = divmod(j, 2)
        got, name = outcomes[j], SIDES[side]
        if not isinstance(got, TokenCounts):
            checks.add("tokens.template_error", i, f"{checks.label(i)}, {name} side: {got}")
            continue
        lengths.setdefault(i, [0, 0])[side] = got.full_length
        if got.trained_kept == 0 and (got.trained_full or got.capped):
            checks.add("pair.answer_lost", i,
                       f"{checks.label(i)}: the {name} answer starts after token {max_len}")
        elif got.trained_kept < got.trained_full or got.capped:
            checks.add("pair.answer_cut", i, f"{checks.label(i)}: {name} side {got.full_length} tokens, "
                                             f"{got.trained_kept} of its {got.trained_full} answer tokens kept")
        if got.markers:
            found = ", ".join(f"{marker} in {where}" for where, marker in got.markers[:4])
            checks.add("text.special_tokens", i, f"{checks.label(i)}, {name} side: {found}")
    return {i: (a, b) for i, (a, b) in lengths.items()}, stopped


def length_bias(checks) -> dict | None:
    """The length-bias figures over pairs with two answers (None without pairs); warns past the thresholds."""
    f = checks.f
    rows = [i for i in range(checks.n) if f.has_pair[i] and f.answer_chars[i] and f.rejected_chars[i]]
    if not rows:
        return None
    chosen = sum(f.answer_chars[i] for i in rows) / len(rows)
    rejected = sum(f.rejected_chars[i] for i in rows) / len(rows)
    longer = [i for i in rows if f.answer_chars[i] > f.rejected_chars[i]]
    ratio, share = chosen / rejected, len(longer) / len(rows)
    figures = {"ratio": round(ratio, 3), "chosen_longer_share": round(share, 3), "pairs": len(rows)}
    if len(rows) >= BIAS_MIN_PAIRS and (ratio >= BIAS_RATIO or share >= BIAS_SHARE):
        file_rows: dict[str, tuple[list[int], list[int]]] = {}
        for i in longer:
            file, line = checks.where(i)
            got = file_rows.setdefault(file, ([], []))
            got[0].append(line)
            got[1].append(i)
        extra = (f"Mean answer length: chosen {chosen:.0f} characters, rejected {rejected:.0f} (ratio "
                 f"{ratio:.2f}); the chosen answer is the longer one in {share:.0%} of {len(rows)} pairs "
                 f"(warned from a ratio of {BIAS_RATIO} or a share of {BIAS_SHARE:.0%}); the lines are those pairs.")
        for file, (lines, idx) in file_rows.items():
            checks.sink.add_many("pair.length_bias", file, lines, idx, extra=extra)
    return figures


def pair_stats(checks, bias: dict | None, tokens: dict[int, tuple[int, int]]) -> dict | None:
    """``stats["preference"]``: how many pairs, each side's mean answer length, the bias figures."""
    f = checks.f
    rows = [i for i in range(checks.n) if f.has_pair[i]]
    if not rows:
        return None

    def mean(values: list[int]) -> float:
        return round(sum(values) / len(values), 1) if values else 0.0

    out = {
        "pairs": len(rows),
        "chosen_mean_chars": mean([f.answer_chars[i] for i in rows]),
        "rejected_mean_chars": mean([f.rejected_chars[i] for i in rows]),
        "length_ratio": bias["ratio"] if bias else None,
        "chosen_longer_share": bias["chosen_longer_share"] if bias else None,
    }
    if tokens:
        out["chosen_mean_tokens"] = mean([a for a, _ in tokens.values()])
        out["rejected_mean_tokens"] = mean([b for _, b in tokens.values()])
    return out


def pair_lengths(result: ScanResult, checker: TokenChecker,
                 should_stop: Callable[[], bool] | None = None) -> tuple[dict[int, int], bool]:
    """(row → tokens of the pair's longer side, stopped), each side rendered as prompt + answer through the
    template like ``training.pair_data`` does, before truncation.

    The preference trainers put both answers of a pair in one batch padded to the longest of them, so
    this is the row length the memory estimate needs. A pair with a side that keeps no answer token
    within max length is left out, as training drops it.
    """
    from studio.core.datasets.fastrender import TokenCounts

    try:
        outcomes, stopped = checker.run(_Sides(result), should_stop)
    finally:
        checker.close()
    sides: dict[int, list[TokenCounts]] = {}
    for j, got in outcomes.items():
        if isinstance(got, TokenCounts):
            sides.setdefault(j // 2, []).append(got)
    lengths = {i: max(s.full_length for s in got) for i, got in sides.items()
               if len(got) == 2 and all(s.trained_kept > 0 for s in got)}
    return lengths, stopped
