"""The run configuration: one typed object the Configure pane edits, the engine trains from, and
YAML files carry between the GUI, the CLI and a remote ``accelerate launch``.

Files carry ``schema_version``; ``load_config`` migrates older versions and turns every bad value
into a field-level message (``training.lr: must be > 0``) instead of a pydantic traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studio.core.errors import StudioError
from studio.core.fsutil import atomic_write_text
from studio.core.limits import MIN_SEQ_LEN

SCHEMA_VERSION = 1

Method = Literal["lora", "qlora", "full"]
# What the run optimises, beside how the weights change (``Method``): supervised next-token loss, or a
# preference loss on chosen/rejected pairs. Kept apart from ``method`` so DPO runs on LoRA or QLoRA alike.
Objective = Literal["sft", "dpo", "orpo"]
PREFERENCE_OBJECTIVES: tuple[str, ...] = ("dpo", "orpo")
DTypeName = Literal["auto", "float32", "bfloat16", "float16"]

TARGET_PRESETS: dict[str, list[str]] = {
    "q,v": ["q_proj", "v_proj"],
    "all attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all linear": ["all-linear"],
}


class _Section(BaseModel):
    # inf/nan pass ``gt``/``lt`` bounds in surprising ways (inf epochs never end), so no field takes them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSection(_Section):
    path: str = Field("", description="Local Hugging Face model folder (config.json + safetensors).")
    dtype: DTypeName = Field("auto", description="Weights dtype for training; auto picks bf16/fp16/fp32 for the device.")
    trust_remote_code: bool = Field(False, description="Run Python code shipped with the model. Only for models you trust.")
    allow_pickle: bool = Field(False, description="Allow legacy pickle (.bin) weights, which can run arbitrary code.")
    chat_template: Literal["", "chatml", "llama3", "gemma", "mistral", "alpaca"] = Field(
        "", description="Chat format to train in: empty keeps the model's own template; a base model without one "
                        "needs a choice (chatml, llama3, gemma, mistral, alpaca).")


class DatasetSection(_Section):
    train: list[str] = Field(default_factory=list, description="Training files (.json, .jsonl, .csv, .parquet).")
    eval: list[str] = Field(default_factory=list, description="Separate evaluation files; empty means split from train.")
    eval_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the training rows held out for eval when no eval file is given.")
    split_seed: int = Field(42, description="Seed of the train/eval split.")
    column_map: dict[str, str] = Field(default_factory=dict, description="Maps unknown columns to prompt/answer/system.")


class LoraSection(_Section):
    r: int = Field(8, ge=1, le=1024, description="LoRA rank: width of the low-rank update. Higher = more capacity and memory.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator; the update is scaled by alpha/r (alpha/sqrt(r) with rsLoRA).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input; regularises small datasets.")
    target_modules: list[str] = Field(default_factory=lambda: ["all-linear"], description="Linear layers that get adapters.")
    use_dora: bool = Field(False, description="DoRA: learn magnitude and direction separately; slower, sometimes better.")
    use_rslora: bool = Field(False, description="rank-stabilised LoRA: scale by alpha/sqrt(r), helps high ranks.")

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("choose at least one target module")
        return v


class QuantSection(_Section):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type for QLoRA base weights.")
    double_quant: bool = Field(True, description="Quantise the quantisation constants too (~0.4 bit/param saved).")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="dtype the 4-bit weights are dequantised to for matmuls.")


class TrainingSection(_Section):
    lr: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps; -1 means use epochs.")
    batch_size: int = Field(4, ge=1, le=4096, description="Examples per device per step.")
    grad_accum: int = Field(1, ge=1, le=4096, description="Steps whose gradients are summed before one optimizer update.")
    max_seq_len: int = Field(512, ge=MIN_SEQ_LEN, description="Longer examples are truncated to this many tokens.")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Share of steps spent ramping the learning rate up.")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field("cosine", description="Learning-rate schedule after warmup.")
    weight_decay: float = Field(0.0, ge=0.0, description="Decoupled weight decay (AdamW).")
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit"] = Field("adamw", description="Optimizer; 8-bit variants store states in 2 bytes/param (bitsandbytes).")
    grad_checkpointing: bool = Field(False, description="Recompute activations in backward: much less memory, ~30 % slower.")
    packing: bool = Field(False, description="Pack several short examples into one sequence (no padding waste).")
    seed: int = Field(42, description="Seed for initialisation, shuffling and dropout.")
    eval_steps: int = Field(50, ge=0, description="Evaluate every N steps (0 = only at start and end).")
    save_steps: int = Field(50, ge=0, description="Write a resumable checkpoint every N steps (0 = only at the end).")
    logging_steps: int = Field(1, ge=1, description="Report training loss every N steps.")
    early_stopping_patience: int = Field(0, ge=0, description="Stop after N evaluations without improvement (0 = off).")
    max_grad_norm: float = Field(1.0, ge=0.0, description="Clip gradients to this norm (0 = off).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; auto uses CUDA when present.")
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="Also send metrics to these trackers when installed; the run journal is always written.",
    )

    @field_validator("report_to")
    @classmethod
    def _unique_trackers(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, v: int) -> int:
        # 0 is no plan at all: the Trainer still ran a step and the run went to the library as trained.
        if v == 0:
            raise ValueError("must be -1 (train for `epochs`) or at least 1, not 0")
        return v


class PreferenceSection(_Section):
    """Settings of the preference objectives (``objective: dpo | orpo``); ignored by supervised runs."""

    beta: float = Field(0.1, gt=0, le=10, description="DPO: how far the adapter may move from the reference "
                        "(higher = closer to it). ORPO: weight of the odds-ratio term beside the answer loss.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = Field(
        "sigmoid", description="DPO loss: sigmoid is the original DPO; ipo, hinge and robust are its variants.")
    start_from: str = Field("", description="Library adapter (name or id) or adapter folder to continue training "
                            "with DPO/ORPO, usually the SFT adapter; empty trains a new adapter on the base.")


class RunConfig(_Section):
    schema_version: int = SCHEMA_VERSION
    name: str = Field("", description="Run name; empty gives one from model, dataset and time.")
    method: Method = Field("lora", description="full = train all weights; lora = adapters on 16-bit base; qlora = adapters on 4-bit base.")
    objective: Objective = Field("sft", description="sft = learn the answers; dpo / orpo = learn which of two "
                                 "answers is better, from chosen/rejected pairs.")
    model: ModelSection = Field(default_factory=ModelSection)
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    quant: QuantSection = Field(default_factory=QuantSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    preference: PreferenceSection = Field(default_factory=PreferenceSection)

    @model_validator(mode="after")
    def _check_method(self) -> RunConfig:
        if self.method == "qlora" and self.training.device == "cpu" and self.quant.compute_dtype == "float16":
            raise ValueError("qlora on CPU needs compute_dtype bfloat16 or float32")
        if self.objective in PREFERENCE_OBJECTIVES and self.method == "full":
            # With an adapter the reference is the base with the adapter switched off; a full fine-tune
            # would need a second copy of the model in memory.
            raise ValueError(f"{self.objective} trains an adapter: use method lora or qlora, not full")
        if self.objective in PREFERENCE_OBJECTIVES and self.training.packing:
            raise ValueError(f"{self.objective} compares whole answers, so packing must be off")
        if self.preference.start_from and self.objective not in PREFERENCE_OBJECTIVES:
            raise ValueError("preference.start_from continues an adapter with dpo or orpo; set objective too")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), self.to_yaml())


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring older files to the current schema. v0 (unversioned) kept lora fields at top level."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise StudioError(f"schema_version must be a whole number like {SCHEMA_VERSION}, not {str(version)[:40]!r}.")
    if version == 0:
        lora = data.setdefault("lora", {})
        for old, new in (("rank", "r"), ("lora_alpha", "alpha"), ("lora_dropout", "dropout"), ("target_modules", "target_modules")):
            if old in data:
                lora[new] = data.pop(old)
        data["schema_version"] = SCHEMA_VERSION
    elif version > SCHEMA_VERSION:
        raise StudioError(
            f"This config was written by a newer studio (schema {version}; this one reads up to {SCHEMA_VERSION}). "
            "Update the studio or remove fields it does not know."
        )
    return data


@dataclass
class ConfigError(StudioError):
    """Settings that break the config's rules, with each bad field as data.

    ``problems`` holds (dotted field, rule) pairs, the field ``""`` for a rule about the config as a
    whole (qlora on CPU in float16), so a form can put the message under the right editor without
    reading the message text.
    """

    problems: tuple[tuple[str, str], ...] = ()

    @property
    def fields(self) -> list[str]:
        return [f for f, _ in self.problems]

    def problem_lines(self, labels: dict[str, str] | None = None) -> list[str]:
        return problem_lines(self.problems, labels)


def problem_lines(problems: tuple[tuple[str, str], ...], labels: dict[str, str] | None = None) -> list[str]:
    """``field: rule`` per problem, each field named as the user knows it (a key, or the flag in ``labels``)."""
    return [f"{(labels or {}).get(field, field) or '(top level)'}: {rule}" for field, rule in problems]


def validation_problems(err: ValidationError) -> list[tuple[str, str]]:
    """(dotted field, rule) per bad field of a pydantic error.

    Built from ``errors(include_input=False)``: rendering the offending input (``str(err)``) can be
    arbitrarily expensive for a hostile value, and the user needs the field and the rule, not the value.
    """
    out = []
    for e in err.errors(include_input=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (typo? remove it or check the spelling)"
        out.append((".".join(str(p) for p in e["loc"]), msg))
    return out


def config_from_dict(
    data: dict[str, Any], *, source: str = "config", labels: dict[str, str] | None = None
) -> RunConfig:
    if not isinstance(data, dict):
        raise StudioError(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}.")
    data = _migrate(dict(data))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        problems = tuple(validation_problems(err))
        lines = problem_lines(problems, labels)
        if len(lines) == 1 and labels and lines[0].startswith("--"):
            # one bad flag: the flag's own message is the whole story
            raise ConfigError(lines[0], problems=problems) from None
        raise ConfigError(
            f"{len(lines)} bad value(s) in {source}:\n  " + "\n  ".join(lines), detail="\n".join(lines),
            problems=problems,
        ) from None


# A run config is a few dozen scalars; anything near this many values is an alias bomb, not a config.
MAX_YAML_VALUES = 100_000
MAX_YAML_BYTES = 1 << 20


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` becomes once aliases are expanded (without expanding them)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_:
        raise StudioError("The config refers to itself (a YAML alias inside its own anchor). Remove the loop.")
    open_.add(key)
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo, open_) + _expanded_size(v, memo, open_) for k, v in node.value)
    else:
        size = 1
    open_.discard(key)
    memo[key] = min(size, MAX_YAML_VALUES + 1)  # capped: the total only needs to cross the limit
    return memo[key]


def parse_yaml(text: str, *, path: Path | None = None) -> Any:
    """``yaml.safe_load`` that refuses what no config needs and what would hang the studio: files over
    1 MiB, and aliases that expand to more values than a config has (the "billion laughs" file:
    ten lines, 10^9 strings once expanded, minutes of CPU and gigabytes in whatever walks it)."""
    if len(text) > MAX_YAML_BYTES:
        raise StudioError(f"This config is {len(text):,} characters long; a run config is a few hundred. "
                          "Check that this is the right file.", path=path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise StudioError(f"Not valid YAML: {getattr(err, 'problem', err)}", path=path, line=line,
                          detail=str(err)) from None
    except RecursionError:
        raise StudioError("This config is nested too deeply to be a run config.", path=path) from None
    if node is None:
        return {}
    try:
        size = _expanded_size(node, {}, set())
    except RecursionError:
        raise StudioError("This config is nested too deeply to be a run config.", path=path) from None
    except StudioError as err:
        err.path = path
        raise
    if size > MAX_YAML_VALUES:
        raise StudioError(f"This config's YAML aliases (&anchor / *alias) expand to more than {MAX_YAML_VALUES:,} "
                          "values; a run config has a few dozen. Write the values out instead of aliasing them.",
                          path=path)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise StudioError(f"Not valid YAML: {getattr(err, 'problem', err)}", path=path,
                          line=mark.line + 1 if mark is not None else None, detail=str(err)) from None
    finally:
        loader.dispose()


def load_config(path: Path) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudioError("Config file not found.", path=path) from None
    except UnicodeDecodeError as err:
        raise StudioError("Config file is not UTF-8 text.", path=path, detail=str(err)) from None
    except IsADirectoryError:
        raise StudioError("This is a folder, not a config file.", path=path) from None
    except OSError as err:
        raise StudioError(f"The config file cannot be read: {err.strerror or err}.", path=path) from None
    data = parse_yaml(text, path=path)
    try:
        return config_from_dict({} if data is None else data, source=str(path))
    except StudioError as err:
        if err.path is None and str(path) not in err.message:
            err.path = path
        raise


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any], labels: dict[str, str] | None = None) -> RunConfig:
    """Return a copy with dotted-key overrides (``training.max_steps``) applied and re-validated.

    ``labels`` names the keys as the caller's user knows them (``{"training.lr": "--lr"}``), so a bad
    value is reported against the flag that set it.
    """
    data = cfg.model_dump(mode="json")
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return config_from_dict(data, source="the settings", labels=labels)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path)) if path else path


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """A copy whose model folder and dataset files are absolute, taken from the current folder.

    A run's config.yaml is read back later, often from another folder (a resume, a library entry, a
    launch on another shell): a relative path would then miss its file, or silently pick up another
    file that happens to share the relative name.
    """
    return apply_overrides(cfg, {
        "model.path": _absolute(cfg.model.path),
        "dataset.train": [_absolute(p) for p in cfg.dataset.train],
        "dataset.eval": [_absolute(p) for p in cfg.dataset.eval],
    })
