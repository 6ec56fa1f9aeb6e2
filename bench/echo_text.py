"""The echo workload's text, in the standard library only: 20 chunks of 4 words.

Every benchmark server streams this, whatever its wire format: meshscope's echo agent
(`services/echo`), the raw gRPC baselines, and the peers in bench/peers/ — including the
AgentScope Runtime app, which runs in its own virtualenv where neither meshscope nor its
stubs are installed. That is why this module imports nothing but the standard library.
`FAULTS` and `faulty_chunks` are the wrong replies the peers stream on `--fault`, for the tests
of the load generator's checks.
"""

from __future__ import annotations

from itertools import cycle, islice

CHUNKS = 20
WORDS_PER_CHUNK = 4
INPUT_TEXT = "the quick brown fox jumps over the lazy dog"


def echo_chunks(text: str) -> list[str]:
    """The deltas the echo agent streams for `text`: its words cycled into CHUNKS chunks.

    Every chunk but the first starts with a space, so that the chunks joined are the reply.
    """
    words = text.split() or ["echo"]
    stream = list(islice(cycle(words), CHUNKS * WORDS_PER_CHUNK))
    return [
        (" " if i else "") + " ".join(stream[i * WORDS_PER_CHUNK : (i + 1) * WORDS_PER_CHUNK])
        for i in range(CHUNKS)
    ]


FAULTS = {
    "none": "the echo workload as it should be",
    "short": "one delta fewer (a lost chunk)",
    "wrong-text": "the last delta's words changed",
    "no-end": "no terminal event",
}
"""What a peer's `--fault` can make it stream wrong, so that tests can show the checks catch it."""


def faulty_chunks(text: str, fault: str) -> tuple[list[str], bool]:
    """The deltas to stream for `text`, and whether to end with the terminal event, per `fault`.

    Raises ValueError for a fault not in `FAULTS`.
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: expected one of {', '.join(FAULTS)}")
    chunks = echo_chunks(text)
    if fault == "short":
        chunks = chunks[:-1]
    elif fault == "wrong-text":
        chunks[-1] = " and something else"
    return chunks, fault != "no-end"
