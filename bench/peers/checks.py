"""What every response of the peers run must be: the echo workload, whole, properly ended.

Each client in `bench.peers.clients` reduces a system's stream to a `Reply` (the text deltas in
order, whether the stream ended with the system's terminal event, the final text that event
carries, if it carries one) and calls `check_reply`; a wrong reply raises `BadResponse`, which
stops the run: a figure measured on wrong responses means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.echo_text import INPUT_TEXT, echo_chunks

EXPECTED = tuple(echo_chunks(INPUT_TEXT))
"""The deltas every system must stream for INPUT_TEXT."""


class BadResponse(AssertionError):
    """A system streamed something other than the echo workload; the message says what.

    The message is one line: ``<system>: <what was wrong>``.
    """


@dataclass
class Reply:
    """One turn's stream as the load generator saw it."""

    deltas: list[str] = field(default_factory=list)
    """The content deltas, in order."""
    ended: bool = False
    """Whether the system's terminal event (completed) arrived."""
    final_text: str | None = None
    """The whole reply text the terminal event carries; None for a protocol whose does not."""
    after_end: int = 0
    """Events that came after the terminal event (must be none)."""
    joined: bool = False
    """Whether the system may join consecutive deltas into one (the bridge's coalescing): then the
    first delta must still be the first chunk alone, and the deltas joined the whole text."""


def check_reply(system: str, reply: Reply) -> None:
    """Raise `BadResponse` unless `reply` is the echo workload, ended by its terminal event.

    Checks, in order: the count of deltas (CHUNKS), each delta's text, the terminal event,
    nothing after it, and the terminal event's copy of the whole text where it has one.
    """
    deltas = reply.deltas
    if reply.joined and deltas and deltas[0] == EXPECTED[0] and len(deltas) <= len(EXPECTED):
        if "".join(deltas) != "".join(EXPECTED):
            raise BadResponse(f"{system}: the joined deltas {''.join(deltas)!r} are not the echo text")
        deltas = list(EXPECTED)  # what was joined is checked; the rest of the checks apply as they are
    if len(deltas) != len(EXPECTED):
        raise BadResponse(f"{system}: {len(deltas)} text deltas, expected {len(EXPECTED)}")
    for i, (got, want) in enumerate(zip(deltas, EXPECTED, strict=True)):
        if got != want:
            raise BadResponse(f"{system}: delta {i + 1} is {got!r}, expected {want!r}")
    if not reply.ended:
        raise BadResponse(f"{system}: the stream ended without its terminal (completed) event")
    if reply.after_end:
        raise BadResponse(f"{system}: {reply.after_end} event(s) after the terminal event")
    whole = "".join(EXPECTED)
    if reply.final_text is not None and reply.final_text != whole:
        raise BadResponse(
            f"{system}: the terminal event's text {reply.final_text!r} is not the streamed text"
        )
