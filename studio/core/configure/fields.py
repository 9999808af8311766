"""The run config's fields by dotted key (``training.lr``): every key, a key's value and its description.

The configure session emits one event per key and the Configure pane names its editors by key, so
both walk the config the same way; the description is the pydantic field's own, so a tooltip and
the YAML schema never disagree.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from studio.core.config import RunConfig


def section_of(key: str) -> type[BaseModel]:
    """The pydantic class that owns a dotted config key (``training.lr`` -> TrainingSection)."""
    cls: type[BaseModel] = RunConfig
    for part in key.split(".")[:-1]:
        cls = cls.model_fields[part].annotation  # type: ignore[assignment]
    return cls


def field_description(key: str) -> str:
    field = section_of(key).model_fields[key.rsplit(".", 1)[-1]]
    return field.description or ""


def field_value(cfg: BaseModel, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


@cache
def field_keys(cls: type[BaseModel] = RunConfig, prefix: str = "") -> tuple[str, ...]:
    """Every leaf key of ``cls``: ``method``, ``lora.r``, ``training.lr`` … (sections are walked into)."""
    out: list[str] = []
    for name, info in cls.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out.extend(field_keys(kind, f"{prefix}{name}."))
        else:
            out.append(prefix + name)
    return tuple(out)
