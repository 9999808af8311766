"""The Dataset pane's jobs that are not the dataset check (``core/datasets/pipeline.py`` runs that):
rendering one row (or one preference pair) for the preview and writing the cleaned copy, each run in a TaskRunner worker
with a ``TaskProgress`` state."""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.datasets.fingerprint import fingerprint
from studio.core.datasets.pipeline import LoadSpec, TokenizerCache
from studio.core.datasets.scan import ScanResult
from studio.core.datasets.validate import Report
from studio.core.progress import TaskProgress


def view_row(state: TaskProgress, example, spec: LoadSpec, tokenizers: TokenizerCache):
    """``preview.view_row`` with the configured model's tokenizer (loaded once, in this thread)."""
    from studio.core.datasets.preview import view_row as render

    tokenizer = tokenizers.get(spec.model_path, "preview", spec.trust_remote_code)
    return render(example, tokenizer, spec.max_len)


def view_pair(state: TaskProgress, pair, spec: LoadSpec, tokenizers: TokenizerCache):
    """``preview.view_pair``: both sides of a preference row as preference training renders them."""
    from studio.core.datasets.preview import view_pair as render

    tokenizer = tokenizers.get(spec.model_path, "preview", spec.trust_remote_code)
    return render(pair, tokenizer, spec.max_len)


@dataclass(frozen=True)
class Cleaned:
    path: str
    kept: int
    dropped: dict[str, int]
    stripped: int
    original_fingerprint: str


def clean(state: TaskProgress, result: ScanResult, report: Report, actions: list[str]) -> Cleaned:
    """Write the cleaned copy beside the original; the original's bytes are read, never written."""
    from studio.core.datasets.clean import plan_clean, write_cleaned_copy

    state.progress(-1.0, "Writing the cleaned copy…")
    plan, _lines = plan_clean(result, actions, report)
    path = write_cleaned_copy(result, actions, report=report)
    readable = [f.path for f in result.files if not f.fatal]
    return Cleaned(str(path), len(plan.keep), dict(plan.dropped), plan.stripped, fingerprint(readable))
