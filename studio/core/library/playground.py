"""The playground: one base model in memory, adapters hot-swapped on top of it, output streamed.

Comparing a base model with two adapters naively means three model loads per prompt. Here the base
is loaded once; each adapter is added to the same ``PeftModel`` with ``load_adapter`` (a few MiB
of LoRA weights, milliseconds) and picked with ``set_adapter``; the base column runs inside
``disable_adapter()``. Switching columns therefore never touches the base weights.

Everything is Qt-free: tokens reach the caller through a plain ``on_token(text)`` callback run on
the generating thread, which the GUI turns into a signal and the CLI ignores. A QLoRA adapter is
applied to the unquantised base here (the merge does the same), so its outputs can differ from the
4-bit training model by rounding.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.formatting import format_seconds
from studio.core.heavy_imports import ensure
from studio.core.library.adapter_files import ADAPTER_CONFIG, adapter_base, read_adapter, resolve_base
from studio.core.library.adapter_keys import check_adapter_shapes, check_peft_loads_all
from studio.core.library.registry import LibraryEntry, base_model_hash, recorded_base_identity
from studio.core.models.device import pick_device, resolve_dtype, torch_dtype
from studio.core.models.folder import IN_PLAYGROUND, check_safety, load_base, open_model_folder
from studio.core.models.identity import identity_change, is_recorded
from studio.core.progress import Progress, no_progress

Messages = Sequence[tuple[str, str]]
OnToken = Callable[[str], None]
ShouldStop = Callable[[], bool]

MISSING_CONFIG = "This base model folder has no config.json; pick a Hugging Face model folder."
MAX_NEW_TOKENS_LIMIT = 4096
DEFAULT_MAX_LOADED = 8


@dataclass(frozen=True)
class GenerationSettings:
    """The sampling settings every column shares, so differences come from the adapters alone.

    ``temperature == 0`` means greedy decoding (deterministic, what exact-match scoring wants).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0

    def checked(self) -> GenerationSettings:
        if not 0.0 <= self.temperature <= 5.0:
            raise StudioError(f"Temperature must be between 0 and 5 (got {self.temperature}); 0 means greedy.")
        if not 0.0 < self.top_p <= 1.0:
            raise StudioError(f"Top-p must be above 0 and at most 1 (got {self.top_p}).")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise StudioError(f"Max new tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT} (got {self.max_new_tokens}).")
        if self.seed < 0:
            raise StudioError(f"The seed must be 0 or more (got {self.seed}).")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "seed": self.seed}


@dataclass
class Generation:
    """One column's answer and how fast it came."""

    text: str
    new_tokens: int
    prompt_tokens: int
    first_token_s: float | None  # from the call to the first new token
    total_s: float
    finish: str  # "eos" | "length" | "stopped"

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"text": self.text, "new_tokens": self.new_tokens, "prompt_tokens": self.prompt_tokens,
                "first_token_s": self.first_token_s, "total_s": self.total_s,
                "tokens_per_s": self.tokens_per_s, "finish": self.finish}


@dataclass(frozen=True)
class AdapterRef:
    """An adapter as the playground knows it. ``key`` is its PEFT adapter name: derived from the
    folder, so the same adapter is never loaded twice, and free of dots (PEFT keys modules by it)."""

    key: str
    label: str
    adapter_dir: Path
    base_model: str
    base_hash: str


def adapter_ref(source: LibraryEntry | AdapterRef | Path | str) -> AdapterRef:
    """Describe a library entry or an adapter folder (one with ``adapter_config.json``)."""
    if isinstance(source, AdapterRef):
        return source
    if isinstance(source, LibraryEntry):
        folder, label = source.adapter_dir, source.name
        base, base_hash = source.base_model, source.base_model_hash
    else:
        folder = Path(source).expanduser()
        if not (folder / ADAPTER_CONFIG).is_file() and (folder / "adapter" / ADAPTER_CONFIG).is_file():
            folder = folder / "adapter"
        label = folder.parent.name if folder.name == "adapter" else folder.name
        base, base_hash = adapter_base(folder), recorded_base_identity(folder)
    read_adapter(folder)
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    return AdapterRef(key=f"a{digest}", label=label, adapter_dir=folder.resolve(), base_model=base, base_hash=base_hash)


class _CallbackStreamer:
    """A transformers streamer that hands decoded text to a callback as tokens arrive.

    It decodes the whole continuation each time and sends the new tail, holding back text that
    ends in a partial UTF-8 character (byte-level BPE splits emoji and accents across tokens).
    ``generate`` calls ``put`` first with the prompt, which is skipped.
    """

    def __init__(self, tokenizer: Any, on_token: OnToken | None) -> None:
        self.tokenizer = tokenizer
        self.on_token = on_token
        self.ids: list[int] = []
        self.sent = ""
        self.first_token_at: float | None = None
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _flush(self, *, final: bool) -> None:
        text = self.text()
        if not final and text.endswith("\ufffd"):
            return
        if text.startswith(self.sent) and len(text) > len(self.sent):
            chunk, self.sent = text[len(self.sent):], text
            if self.on_token is not None:
                self.on_token(chunk)


def _stopping(should_stop: ShouldStop) -> Any:
    import torch
    from transformers import StoppingCriteria

    class _UserStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), bool(should_stop()), dtype=torch.bool, device=input_ids.device)

    return _UserStop()


class Playground:
    """A base model loaded once, with library adapters switched on top of it.

    ``base_loads`` counts loads of the base weights (always 1: the point of the class); the tests
    and the UI read it. Calls are serialised by a lock, so one instance can be shared by a worker
    thread and the code that owns it.
    """

    def __init__(
        self,
        base_path: Path | str,
        *,
        dtype: str = "auto",
        device: str | None = None,
        trust_remote_code: bool = False,
        max_loaded: int = DEFAULT_MAX_LOADED,
        progress: Progress | None = None,
    ) -> None:
        ensure()
        from transformers import AutoTokenizer

        from studio.core.training.engine import quiet_libraries

        quiet_libraries()  # the caller reports progress; no library bars on the console
        self.base_path = Path(base_path).expanduser().resolve()
        base = open_model_folder(self.base_path, missing=MISSING_CONFIG)
        check_safety(base, allow_pickle=False, trust_remote_code=trust_remote_code, words=IN_PLAYGROUND)
        self.device = pick_device(device)
        self.dtype = torch_dtype(resolve_dtype(dtype, self.device))
        report = progress or no_progress
        t0 = time.perf_counter()
        report(0.05, f"Loading {self.base_path.name}")
        self.base_hash = base_model_hash(self.base_path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.base_path), trust_remote_code=trust_remote_code)
        # A base model without a template has no chat format; an adapter brings the one it was trained in.
        self._base_template = self.tokenizer.chat_template if isinstance(self.tokenizer.chat_template, str) else None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        try:
            model = load_base(base, self.dtype, trust_remote_code=trust_remote_code)
        except Exception as err:
            raise StudioError("The base model could not be loaded.", path=self.base_path,
                              detail=f"{type(err).__name__}: {err}") from None
        # transformers switches torch's process-wide default dtype while it builds a model; a load on
        # another thread at the same moment (the GUI inspects models in workers) can leave some
        # layers in its dtype. One cast makes the whole model what was asked for (no-op when it is).
        self.base_model = model.to(device=self.device, dtype=self.dtype).eval()
        self.base_loads = 1
        self.load_s = time.perf_counter() - t0
        self._peft: Any = None
        self._loaded: OrderedDict[str, AdapterRef] = OrderedDict()
        self._max_loaded = max(1, max_loaded)
        self._lock = threading.RLock()
        self._turn_ends: dict[str | None, set[int]] = {}  # per chat template: the token closing a turn
        report(1.0, f"Loaded {self.base_path.name} in {format_seconds(self.load_s)}")

    # ------------------------------------------------------------------ adapters

    @property
    def loaded_adapters(self) -> list[AdapterRef]:
        return list(self._loaded.values())

    @property
    def model(self) -> Any:
        """What generates: the PeftModel once an adapter was loaded, else the plain base."""
        return self._peft if self._peft is not None else self.base_model

    def _base_change(self, ref: AdapterRef) -> str | None:
        """What differs between the base ``ref`` was trained on and the loaded one (None: the same).
        Compared with the identity taken when this base was loaded: that is what generates."""
        try:
            return identity_change(ref.base_hash, self.base_path, current=self.base_hash)
        except StudioError as err:
            return err.message

    def fits(self, source: LibraryEntry | AdapterRef | Path | str) -> bool:
        """Whether an adapter was trained on this base (same recorded identity, or the same folder)."""
        ref = adapter_ref(source)
        if is_recorded(ref.base_hash):
            return self._base_change(ref) is None
        try:
            return resolve_base(ref.adapter_dir) == self.base_path
        except StudioError:
            return False

    def _check_fits(self, ref: AdapterRef) -> None:
        change = self._base_change(ref) if is_recorded(ref.base_hash) else None
        if change is not None:
            same_folder = bool(ref.base_model) and Path(ref.base_model).expanduser().resolve() == self.base_path
            if same_folder:
                raise StudioError(
                    f"The base model in {self.base_path} changed since '{ref.label}' was trained ({change}); restore "
                    "the original model files, or retrain the adapter on the model as it is now.")
            raise StudioError(
                f"'{ref.label}' was trained on {Path(ref.base_model).name or 'another model'}, not on the loaded base "
                f"{self.base_path.name}. Pick the base it was trained on to compare it.", path=ref.adapter_dir)
        if not is_recorded(ref.base_hash):
            check_adapter_shapes(ref.adapter_dir, self.base_path)  # reads headers only; clear message on mismatch
        # PEFT's load would silently drop tensors a wrong config does not name: refuse instead.
        check_peft_loads_all(ref.adapter_dir, self.base_path)

    def ensure_adapter(self, source: LibraryEntry | AdapterRef | Path | str) -> AdapterRef:
        """Make an adapter available for generation without reloading the base; cheap when already loaded."""
        ref = adapter_ref(source)
        with self._lock:
            if ref.key in self._loaded:
                self._loaded.move_to_end(ref.key)
                return ref
            self._check_fits(ref)
            try:
                with warnings.catch_warnings():
                    # PEFT asks the model a deprecated transformers question; nothing a user can act on.
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                    if self._peft is None:
                        ensure("peft")
                        from peft import PeftModel

                        self._peft = PeftModel.from_pretrained(self.base_model, str(ref.adapter_dir),
                                                               adapter_name=ref.key)
                    else:
                        self._peft.load_adapter(str(ref.adapter_dir), adapter_name=ref.key)
            except Exception as err:
                raise StudioError(
                    f"'{ref.label}' could not be put on {self.base_path.name}: it does not fit this base model "
                    "(different layers, vocabulary or adapter type).", path=ref.adapter_dir,
                    detail=f"{type(err).__name__}: {err}") from None
            self._peft.eval()
            self._loaded[ref.key] = ref
            while len(self._loaded) > self._max_loaded:
                old, _ = self._loaded.popitem(last=False)
                self._peft.delete_adapter(old)
            return ref

    @contextlib.contextmanager
    def _active(self, adapter: LibraryEntry | AdapterRef | Path | str | None) -> Iterator[Any]:
        """The model with exactly ``adapter`` on (``None``: the base, adapters disabled)."""
        if adapter is None:
            if self._peft is None:
                yield self.base_model
            else:
                with self._peft.disable_adapter():
                    yield self._peft
            return
        ref = self.ensure_adapter(adapter)
        self._peft.set_adapter(ref.key)
        yield self._peft

    # ------------------------------------------------------------------ text in, text out

    @contextlib.contextmanager
    def _template(self, adapter: LibraryEntry | AdapterRef | Path | str | None) -> Iterator[None]:
        """The tokenizer with the chat format ``adapter`` was trained in (its saved chat_template.jinja,
        which for a base model is the template the user chose), else the base model's own."""
        saved = adapter_ref(adapter).adapter_dir / "chat_template.jinja" if adapter is not None else None
        template = saved.read_text(encoding="utf-8") if saved is not None and saved.is_file() else self._base_template
        if not template:
            from studio.core.datasets.templates import missing_template_message

            raise StudioError(missing_template_message(self.base_path))
        with self._lock:
            self.tokenizer.chat_template = template
            try:
                yield
            finally:
                self.tokenizer.chat_template = self._base_template

    def prompt_ids(self, prompt: str | Messages,
                   adapter: LibraryEntry | AdapterRef | Path | str | None = None) -> list[int]:
        """The prompt as the model sees it in chat: the chat template with the assistant turn opened."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [
            {"role": r, "content": c} for r, c in prompt]
        with self._template(adapter):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _turn_end(self, adapter: LibraryEntry | AdapterRef | Path | str | None) -> set[int]:
        """The token the chat template in use closes an assistant turn with (empty when it adds none).

        Base models' generation configs often stop only on their end of document (Llama-3.2's
        ``<|end_of_text|>``, Gemma 2's ``<eos>``, Qwen2.5's ``<|endoftext|>``) while their template ends
        a turn with another token. Without it, an adapter that learned to end its turn would run on to
        the token limit here, and the run's "will it stop?" figure (which counts the same token, read
        off the same probe) would disagree with what the user sees."""
        from studio.core.datasets.stopcheck import end_of_turn

        with self._template(adapter):
            template = self.tokenizer.chat_template
            if template not in self._turn_ends:
                eot = end_of_turn(self.tokenizer)
                self._turn_ends[template] = {eot[0]} if eot is not None and eot[0] is not None else set()
            return self._turn_ends[template]

    def _generation_config(self, model: Any, settings: GenerationSettings,
                           turn_end: set[int] | frozenset[int] = frozenset()) -> Any:
        gen = copy.deepcopy(model.generation_config)
        gen.max_new_tokens = settings.max_new_tokens
        gen.min_new_tokens = None
        gen.max_length = None
        gen.num_beams = 1
        gen.pad_token_id = self.tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = self.tokenizer.eos_token_id
        if turn_end - self._eos_ids(gen):
            gen.eos_token_id = sorted(self._eos_ids(gen) | turn_end)
        if settings.greedy:
            gen.do_sample, gen.temperature, gen.top_p, gen.top_k = False, None, None, None
        else:
            gen.do_sample, gen.temperature, gen.top_p, gen.top_k = True, settings.temperature, settings.top_p, None
        return gen

    def _eos_ids(self, gen: Any) -> set[int]:
        eos = gen.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def generate(
        self,
        prompt: str | Messages,
        adapter: LibraryEntry | AdapterRef | Path | str | None = None,
        settings: GenerationSettings | None = None,
        on_token: OnToken | None = None,
        should_stop: ShouldStop | None = None,
    ) -> Generation:
        """Answer ``prompt`` with the base (``adapter=None``) or one adapter, streaming text to ``on_token``.

        The seed is set before every call, so every column samples from the same random stream.
        """
        import torch
        from transformers import StoppingCriteriaList

        settings = (settings or GenerationSettings()).checked()
        ids = self.prompt_ids(prompt, adapter)
        turn_end = self._turn_end(adapter)
        with self._lock, self._active(adapter) as model:
            gen = self._generation_config(model, settings, turn_end)
            streamer = _CallbackStreamer(self.tokenizer, on_token)
            stops = StoppingCriteriaList([_stopping(should_stop)]) if should_stop is not None else None
            torch.manual_seed(settings.seed)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(input_ids=torch.tensor([ids], device=self.device),
                                     attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.device),
                                     generation_config=gen, streamer=streamer, stopping_criteria=stops)
            total = time.perf_counter() - t0
        new = [int(t) for t in out[0, len(ids):].tolist()]
        eos = self._eos_ids(gen)
        if should_stop is not None and should_stop():
            finish = "stopped"
        elif new and new[-1] in eos:
            finish = "eos"
        else:
            finish = "length"
        first = None if streamer.first_token_at is None else streamer.first_token_at - t0
        return Generation(text=streamer.text(), new_tokens=len(new), prompt_tokens=len(ids),
                          first_token_s=first, total_s=total, finish=finish)

    def answer_loss(
        self, prompt: str | Messages, expected: str, adapter: LibraryEntry | AdapterRef | Path | str | None = None,
        *, max_len: int = 2048,
    ) -> tuple[float, int]:
        """(summed cross-entropy, token count) of ``expected`` as the assistant's answer to ``prompt``.

        Rendered and masked exactly as training renders an eval row (loss on the answer and its
        end-of-turn token only), so the numbers are comparable with the run's eval loss.
        """
        import torch

        from studio.core.datasets.formats import Example
        from studio.core.datasets.render import IGNORE_INDEX, render_example

        turns = (("user", prompt),) if isinstance(prompt, str) else tuple(prompt)
        with self._template(adapter):
            rendered = render_example(Example(messages=(*turns, ("assistant", expected))), self.tokenizer, max_len)
        labels = torch.tensor([rendered.labels[1:]], device=self.device)
        if int((labels != IGNORE_INDEX).sum()) == 0:
            return 0.0, 0
        with self._lock, self._active(adapter) as model, torch.inference_mode():
            logits = model(input_ids=torch.tensor([rendered.input_ids], device=self.device)).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                reduction="sum")
        return float(loss), int((labels != IGNORE_INDEX).sum())


class PlaygroundHolder:
    """Keeps one Playground alive for a UI: asking for the same base reuses it, another base
    replaces it (two bases in memory at once is how a laptop runs out of RAM)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: Playground | None = None

    def get(self, base_path: Path | str, progress: Progress | None = None, **kwargs: Any) -> Playground:
        want = Path(base_path).expanduser().resolve()
        with self._lock:
            if self.current is not None and self.current.base_path == want:
                return self.current
            self.current = None  # release the old base before loading the new one
            import gc

            gc.collect()
            self.current = Playground(want, progress=progress, **kwargs)
            return self.current

    def release(self) -> None:
        with self._lock:
            self.current = None


__all__ = ["AdapterRef", "Generation", "GenerationSettings", "Playground", "PlaygroundHolder", "adapter_ref"]
