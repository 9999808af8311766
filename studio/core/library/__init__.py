"""Adapter library, merge & export, GGUF export and the equivalence proof.

Importing this package is cheap: torch, transformers and peft load inside the functions that need them.
"""

from studio.core.library.registry import (
    AdapterMeta,
    LibraryEntry,
    delete,
    empty_trash,
    get_entry,
    import_adapter,
    list_entries,
    list_trash,
    register_adapter,
    rename,
    restore,
)

__all__ = [
    "AdapterMeta",
    "LibraryEntry",
    "delete",
    "empty_trash",
    "get_entry",
    "import_adapter",
    "list_entries",
    "list_trash",
    "register_adapter",
    "rename",
    "restore",
]
