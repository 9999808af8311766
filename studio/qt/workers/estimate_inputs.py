"""Background jobs feeding the Configure pane's estimate: the dataset's token lengths and this
machine's calibration. Both read files (and tokenize), so neither may run on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable

from studio.core.config import PREFERENCE_OBJECTIVES, RunConfig
from studio.qt.workers.task import TaskState


def lengths_key(cfg: RunConfig) -> tuple:
    """What the dataset's lengths depend on; a new key means counting again (an edit that leaves it
    unchanged, such as the learning rate, must not start a recount)."""
    d = cfg.dataset
    # A preference objective counts each pair's longer side (prompt + answer), a supervised one each row.
    pairs = cfg.objective in PREFERENCE_OBJECTIVES
    return (cfg.model.path, tuple(d.train), bool(d.eval), d.eval_ratio, d.split_seed,
            tuple(sorted(d.column_map.items())), cfg.training.max_seq_len, pairs)


def lengths_job(cfg: RunConfig) -> Callable[[TaskState], tuple]:
    """(DatasetLengths or None, problem text): counted like the dataset check counts. Run it in a
    ``TaskSlot``: a newer count cancels this one and drops its answer."""

    def job(state: TaskState) -> tuple:
        from studio.core.errors import describe_exception
        from studio.core.memory import count_lengths

        try:
            return count_lengths(cfg, should_stop=state.should_stop), ""
        except Exception as exc:  # a dataset that cannot be counted leaves the worst case as the verdict
            return None, describe_exception(exc)[0]

    return job


def calibration_job(_state: TaskState) -> dict:
    """{device kind: Calibration} from the runs store."""
    from studio.core.memory import machine_calibration

    return {kind: machine_calibration(kind) for kind in ("cpu", "cuda")}
