"""One error type for everything a user can cause or fix.

The GUI and the CLI both show ``message`` (plain words, what to do) and keep ``detail`` (technical
text, a traceback) behind a "details" toggle, so no user ever meets a bare traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class StudioError(Exception):
    message: str
    detail: str = ""
    path: Path | str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.user_text()

    def user_text(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if self.line is not None:
                where += f", line {self.line}"
            where += ": "
        return f"{where}{self.message}"

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "detail": self.detail,
            "path": None if self.path is None else str(self.path),
            "line": self.line,
        }


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(plain message, technical detail) for any exception, for the one error path."""
    import traceback

    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, StudioError):
        return exc.user_text(), exc.detail or detail
    if isinstance(exc, MemoryError):
        return "The machine ran out of memory. Try a smaller batch or sequence length.", detail
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename}", detail
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename}", detail
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return "The disk is full. Free some space and try again; nothing was half-written.", detail
    return f"Something went wrong: {type(exc).__name__}: {exc}", detail
