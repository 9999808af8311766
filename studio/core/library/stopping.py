""""Will it stop?" after training: the share of answers that end with EOS before the token limit.

A model that never learned its end-of-turn token answers and then rambles until ``max_new_tokens``;
its eval loss can still look fine. Counting how many greedy answers finish on EOS makes that visible
in the compare report and the playground.
"""

from __future__ import annotations

from collections.abc import Iterable

from studio.core.library.playground import Generation


def eos_share(generations: Iterable[Generation]) -> float | None:
    """Share of finished answers that ended on EOS (answers you stopped yourself are left out);
    None when there is none to count."""
    done = [g for g in generations if g.finish in ("eos", "length")]
    return sum(g.finish == "eos" for g in done) / len(done) if done else None
