"""One generation on a loaded GGUF model: render the prompt, check it fits, yield tokens.

Blocking; it runs in the process's model thread (`bridge.ModelThread`). The caller stops it
between two tokens by closing the iterator (the bridge does when its caller goes away).

Sampling, besides the temperature: top-k 40, top-p 0.9, min-p 0.05, repeat penalty 1.1 over
the last 64 tokens (small models loop without one). Temperature 0 is greedy decoding, so the
same prompt gives the same answer (benchmarks use it); otherwise each call draws a fresh seed.
"""

from __future__ import annotations

import codecs
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from meshscope.services.runtime.errors import ContextOverflow
from meshscope.services.runtime.models.gguf import LoadedModel
from meshscope.services.runtime.models.prompt import ChatTurn

__all__ = ["Finished", "GenerationSettings", "Prompted", "generate"]

TOP_K = 40
TOP_P = 0.9
MIN_P = 0.05
REPEAT_PENALTY = 1.1


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """What one generation may do."""

    max_tokens: int
    """Most tokens of the answer."""
    temperature: float
    """0: greedy (deterministic); higher: more varied."""


@dataclass(frozen=True, slots=True)
class Prompted:
    """First item of a generation: the prompt was read, this many tokens long."""

    tokens: int


@dataclass(frozen=True, slots=True)
class Finished:
    """Last item of a generation that ran to its end."""

    tokens: int
    """Tokens generated (the end-of-turn token not counted)."""
    stopped: bool
    """True: the model ended its turn; False: it reached `max_tokens`."""


def prompt_tokens(model: LoadedModel, turns: Sequence[ChatTurn]) -> list[int]:
    """The chat turns rendered by the GGUF's template, as tokens (special tokens parsed)."""
    # llama-cpp-python types each role's message separately; a ChatTurn is any of them.
    messages: list[Any] = list(turns)
    rendered = model.template(messages=messages)
    # The template writes the BOS token itself when the model has one (`added_special`).
    return model.llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)


def generate(
    model: LoadedModel, turns: Sequence[ChatTurn], settings: GenerationSettings, *, agent: str = ""
) -> Iterator[Prompted | str | Finished]:
    """`Prompted`, then the answer's text piece by piece (one per token, split UTF-8 joined), then `Finished`.

    Raises ContextOverflow before generating when the prompt and `max_tokens` together do not
    fit the context window: the answer is never cut short by the window.
    """
    llama = model.llama
    tokens = prompt_tokens(model, turns)
    window = llama.n_ctx()
    if len(tokens) + settings.max_tokens > window:
        who = f"agent {agent!r}: " if agent else ""
        raise ContextOverflow(
            f"{who}the conversation is {len(tokens)} tokens; with room for an answer of up to "
            f"{settings.max_tokens} tokens it does not fit the model's context window of {window} tokens: "
            "start a new session, shorten the input, or raise MESHSCOPE_LOCAL_CONTEXT_TOKENS "
            "(or lower MESHSCOPE_LOCAL_MAX_TOKENS)"
        )
    yield Prompted(len(tokens))
    if settings.temperature > 0:
        llama.set_seed(secrets.randbits(31))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    produced = 0
    stopped = False
    steps = llama.generate(
        tokens,
        temp=settings.temperature,
        top_k=TOP_K,
        top_p=TOP_P,
        min_p=MIN_P,
        repeat_penalty=REPEAT_PENALTY,
    )
    try:
        for token in steps:
            if model.is_end(token):
                stopped = True
                break
            produced += 1
            text = decoder.decode(llama.detokenize([token]))
            if text:
                yield text
            if produced >= settings.max_tokens:
                break
    finally:
        steps.close()
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail
    yield Finished(produced, stopped)
