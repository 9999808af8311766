"""Dataset-wide checks and statistics on top of a scan: duplicates, leakage, outliers, style
mixes, and — with a tokenizer — what truncation to ``max_len`` will do to every row.

Severity rule: a row that cannot train is an error; anything that trains but is probably not what
was meant (duplicates, a style mix, an outlier) is a warning. The token checks use the very
rendering training uses (``fastrender`` is ``render_example`` at batch speed), so "will be cut" and
"teaches nothing" here are exactly what the trainer will do.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.datasets.findings import CATALOGUE, Finding, FindingSink
from studio.core.datasets.paircheck import length_bias, pair_stats, side_checker, side_tokens
from studio.core.datasets.scan import FileInfo, ScanResult, files_fingerprint
from studio.core.datasets.split import split_indices
from studio.core.progress import CountProgress as Progress


@dataclass
class Report:
    format: str
    rows: int
    findings: list[Finding]
    stats: dict
    fingerprint: str | None
    files: list[FileInfo]
    eval_files: list[FileInfo] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    token_checked: bool = False
    stopped: bool = False
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def fingerprint_caption(self) -> str:
        """'sha256 2e4b935b55ab…' when the fingerprint is one file's sha256 (what ``sha256sum`` prints);
        'fingerprint 0066b19f1a2c…' when it covers several files (train + eval), which no one file's
        sha256 matches, so calling it sha256 would send a user comparing hashes astray."""
        if not self.fingerprint:
            return ""
        kind = "sha256" if len(self.files) + len(self.eval_files) == 1 else "fingerprint"
        return f"{kind} {self.fingerprint[:12]}…"

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def fatal(self) -> bool:
        return any(f.fatal for f in [*self.files, *self.eval_files])

    @property
    def exit_code(self) -> int:
        """0 clean (warnings allowed), 1 errors, 2 a file could not be read at all."""
        if self.fatal:
            return 2
        return 1 if self.errors else 0

    def rows_with(self, *codes: str) -> set[int]:
        return {r for f in self.findings if f.code in codes for r in f.rows}

    def row_findings(self) -> dict[int, list[Finding]]:
        """Row index → the findings that point at it (for marking rows in a table)."""
        out: dict[int, list[Finding]] = {}
        for f in self.findings:
            for r in f.rows:
                out.setdefault(r, []).append(f)
        return out

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "rows": self.rows,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "exit_code": self.exit_code,
            "fingerprint": self.fingerprint,
            "columns": self.columns,
            "token_checked": self.token_checked,
            "stopped": self.stopped,
            "findings": [f.to_dict() for f in self.findings],
            "stats": self.stats,
            "files": [f.to_dict() for f in self.files],
            "eval_files": [f.to_dict() for f in self.eval_files],
        }


def _sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    order = {c: i for i, c in enumerate(CATALOGUE)}
    return sorted(findings, key=lambda f: (f.severity != "error", order.get(f.code, 999), f.file))


def histogram(values: list[int], *, cutoff: int | None = None, bins: int = 30) -> dict:
    """Bins and counts for a bar chart. With a cut-off the bins end exactly at it and one last
    bin holds everything beyond, so the chart can draw the cut-off line on a bin edge."""
    if not values:
        return {"edges": [], "counts": [], "cutoff": cutoff, "min": 0, "max": 0, "mean": 0.0, "p50": 0, "p90": 0, "p99": 0}
    ordered = sorted(values)
    top = ordered[-1]
    if cutoff:
        width = max(1, math.ceil(cutoff / 20))
        edges = list(range(0, cutoff + 1, width))
        if edges[-1] != cutoff:
            edges.append(cutoff)
        if top > cutoff:
            edges.append(top + 1)
    else:
        width = max(1, math.ceil((top + 1) / bins))
        edges = list(range(0, top + width + 1, width))
    counts = [0] * (len(edges) - 1)
    import bisect

    last_inside = (edges.index(cutoff) - 1) if cutoff else len(counts) - 1
    for v in values:
        # A row of exactly ``cutoff`` tokens fits and is not cut: it counts below the line.
        k = last_inside if cutoff and v == cutoff else min(len(counts) - 1, max(0, bisect.bisect_right(edges, v) - 1))
        counts[k] += 1

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))]

    return {
        "edges": edges, "counts": counts, "cutoff": cutoff, "min": ordered[0], "max": top,
        "mean": round(sum(values) / len(values), 2), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
    }


class _Checks:
    def __init__(self, result: ScanResult, sink: FindingSink) -> None:
        self.r = result
        self.sink = sink
        self.f = result.features
        self.n = len(result)

    def where(self, i: int) -> tuple[str, int]:
        return self.r.store.source(i), self.r.store.lines[i]

    def add(self, code: str, i: int, note: str | None = None) -> None:
        file, line = self.where(i)
        self.sink.add(code, file, line=line, row=i, note=note)

    def label(self, i: int) -> str:
        file, line = self.where(i)
        kind = next((fi.kind for fi in self.r.files if fi.path == file), "")
        word = {"json": "element", "parquet": "row"}.get(kind, "line")
        many = len(self.r.files) > 1
        return f"{Path(file).name} {word} {line}" if many else f"{word} {line}"

    def duplicates(self) -> None:
        has = self.f.keyed   # rows with an Example or a preference pair
        first_exact: dict[int, int] = {}
        first_norm: dict[int, int] = {}
        for i in range(self.n):
            if not has[i]:
                continue
            key = self.f.exact[i]
            j = first_exact.setdefault(key, i)
            if j != i:
                self.add("dup.exact", i, f"{self.label(i)} repeats {self.label(j)}")
                continue
            norm = self.f.normalized[i]
            j = first_norm.setdefault(norm, i)
            if j != i:
                self.add("dup.normalized", i, f"{self.label(i)} matches {self.label(j)}")

    def leakage(self, eval_prompts: Mapping[int, str], train_rows: Iterable[int]) -> None:
        has = self.f.keyed
        for i in train_rows:
            if has[i]:
                where = eval_prompts.get(self.f.prompt[i])
                if where is not None:
                    self.add("leak.train_eval", i, f"{self.label(i)} is also {where}")

    def outliers(self, lengths: Mapping[int, int], unit: str) -> None:
        idx = list(lengths)
        if len(idx) < 20:
            return
        vals = [lengths[i] for i in idx]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        if std <= 0:
            return
        # Two sigma alone flags ~5 % of any data set, however tight: 56 tokens against 60 ± 2 is not
        # pasted junk or cut-off text. A row must also be at least twice, or at most half, the median
        # length before it is called much longer or shorter than the rest.
        median = statistics.median(vals)
        lo = min(mean - 2 * std, median / 2)
        hi = max(mean + 2 * std, median * 2)
        for i in idx:
            v = lengths[i]
            if v > hi or v < lo:
                self.add("length.outlier", i, f"{self.label(i)}: {v} {unit} (typical {mean:.0f} ± {std:.0f})")

    def style(self) -> None:
        f = self.f
        rows = [i for i in range(self.n) if f.has_example[i] and f.answer_chars[i] > 0]
        if len(rows) < 4:
            return
        ws = [i for i in rows if f.trailing_ws[i]]
        if 0 < len(ws) < len(rows):
            minority_ws = len(ws) <= len(rows) / 2
            flagged = ws if minority_ws else [i for i in rows if not f.trailing_ws[i]]
            note = "most answers end cleanly; these end with whitespace" if minority_ws else \
                "most answers end with whitespace; these do not"
            for k, i in enumerate(flagged):
                self.add("style.trailing_whitespace", i, note if k == 0 else None)
        punct = [i for i in rows if f.ends_punct[i]]
        share = len(punct) / len(rows)
        if 0 < len(punct) < len(rows) and (share >= 0.75 or share <= 0.25):
            flagged = [i for i in rows if not f.ends_punct[i]] if share >= 0.75 else punct
            note = ("most answers end with . ! or ?; these do not" if share >= 0.75
                    else "most answers end without . ! or ?; these end with one")
            for k, i in enumerate(flagged):
                self.add("style.ending_punctuation", i, note if k == 0 else None)


def _token_findings(checks: _Checks, outcomes: Mapping, max_len: int) -> tuple[dict[int, int], dict[int, int]]:
    from studio.core.datasets.fastrender import TokenCounts

    full: dict[int, int] = {}
    trained: dict[int, int] = {}
    for i in sorted(outcomes):
        got = outcomes[i]
        if not isinstance(got, TokenCounts):
            checks.add("tokens.template_error", i, f"{checks.label(i)}: {got}")
            continue
        full[i] = got.full_length
        trained[i] = got.trained_full
        if got.full_length > max_len:
            # A capped row was tokenized only as far as training reads it: its count is a lower bound.
            size = f"over {got.full_length} tokens (a very long row; only its start was counted)" if got.capped \
                else f"{got.full_length} tokens"
            checks.add("tokens.truncated", i, f"{checks.label(i)}: {size}")
        if got.trained_kept == 0:
            checks.add("tokens.no_trained_tokens", i,
                       f"{checks.label(i)}: the answer starts after token {max_len}" if got.trained_full or got.capped
                       else f"{checks.label(i)}: no token is trained")
        if got.markers:
            found = ", ".join(f"{marker} in {where}" for where, marker in got.markers[:4])
            checks.add("text.special_tokens", i, f"{checks.label(i)}: {found}")
    return full, trained


def validate(
    result: ScanResult,
    *,
    tokenizer=None,
    max_len: int | None = None,
    eval_result: ScanResult | None = None,
    eval_ratio: float | None = None,
    split_seed: int = 42,
    batch: int = 2000,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Progress | None = None,
    token_checker=None,
) -> Report:
    """Everything a person should know before training on ``result``.

    Leakage is checked against ``eval_result`` (a separate eval file) or, with ``eval_ratio``,
    against the rows the trainer's seeded split will hold out. Token checks need both
    ``tokenizer`` and ``max_len`` (or a ``token_checker`` that was fed during the scan);
    ``on_progress(done, total)`` reports rows tokenized.
    """
    t0 = time.perf_counter()
    sink = FindingSink()
    checks = _Checks(result, sink)
    f = result.features
    n = len(result)
    checks.duplicates()

    split = None
    if eval_result is not None:
        eval_prompts: dict[int, str] = {}
        ef = eval_result.features
        for j in range(len(eval_result)):
            if ef.keyed[j]:
                file, line = eval_result.store.source(j), eval_result.store.lines[j]
                eval_prompts.setdefault(ef.prompt[j], f"in {Path(file).name} line {line}")
        checks.leakage(eval_prompts, range(n))
        split = {"source": "file", "train": n, "eval": len(eval_result)}
    elif eval_ratio:
        train_idx, eval_idx = split_indices(n, eval_ratio, split_seed)
        eval_prompts = {}
        for j in eval_idx:
            if f.keyed[j]:
                eval_prompts.setdefault(f.prompt[j], f"held out for eval ({checks.label(j)})")
        checks.leakage(eval_prompts, train_idx)
        split = {"source": "ratio", "ratio": eval_ratio, "seed": split_seed, "train": len(train_idx), "eval": len(eval_idx)}

    checks.style()
    token_full: dict[int, int] = {}
    token_trained: dict[int, int] = {}
    stopped = result.stopped
    token_checked = False
    if token_checker is None and tokenizer is not None and max_len:
        from studio.core.datasets.tokencheck import TokenChecker, worth_a_process

        token_checker = TokenChecker(tokenizer, max_len, batch=batch, parallel=worth_a_process(rows=n))
    if token_checker is not None:
        max_len = token_checker.max_len
        try:
            outcomes, stop2 = token_checker.run(result, should_stop, on_progress)
        finally:
            token_checker.close()
        token_full, token_trained = _token_findings(checks, outcomes, max_len)
        stopped = stopped or stop2
        token_checked = not stop2
    side_lengths: dict[int, tuple[int, int]] = {}
    if token_checker is not None and any(f.has_pair) and not stopped:
        sides = side_checker(token_checker.tokenizer, max_len, sum(f.has_pair))
        side_lengths, stop3 = side_tokens(checks, sides, should_stop, on_progress)
        stopped = stopped or stop3
        token_checked = token_checked and not stop3
    if token_full:
        checks.outliers(token_full, "tokens")
    else:
        checks.outliers({i: f.total_chars[i] for i in range(n) if f.has_example[i]}, "characters")

    turns = Counter()
    for i in range(n):
        if f.keyed[i]:
            turns["text" if f.fmt[i] == 2 else str(f.turns[i])] += 1
    answer_chars = [f.answer_chars[i] for i in range(n) if f.has_example[i]]
    bias = length_bias(checks)
    # A pair is as long as its longer side: that is the one truncation reaches first.
    token_rows = token_full or {i: max(ab) for i, ab in side_lengths.items()}
    stats: dict = {
        "rows": n,
        "trainable_rows": sum(f.trainable),
        "formats": result.format_counts,
        "turns": dict(sorted(turns.items(), key=lambda kv: (kv[0] == "text", int(kv[0]) if kv[0].isdigit() else 0))),
        "answer_chars": histogram(answer_chars),
        "tokens": histogram(list(token_rows.values()), cutoff=max_len) if token_rows else None,
        "trained_tokens": histogram(list(token_trained.values())) if token_trained else None,
        "max_len": max_len,
        "split": split,
        "preference": pair_stats(checks, bias, side_lengths),
        "scan_seconds": round(result.seconds, 3),
    }
    findings = _sorted_findings([*result.findings, *sink.findings(), *(eval_result.findings if eval_result else [])])
    # Over the training files then the eval files, flat and in order: the run journal records the same.
    fingerprint = files_fingerprint([*result.files, *(eval_result.files if eval_result else [])])
    stats["validate_seconds"] = round(time.perf_counter() - t0, 3)
    return Report(
        format=result.format, rows=n, findings=findings, stats=stats, fingerprint=fingerprint,
        files=result.files, eval_files=eval_result.files if eval_result else [], columns=result.columns,
        token_checked=token_checked, stopped=stopped, seconds=time.perf_counter() - t0 + result.seconds,
    )
