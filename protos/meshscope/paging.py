"""Paging of what grows with user data: session transcripts and session listings (AIP-158).

Both sides of the wire page: an agent service pages its store, the orchestrator pages
its merge of every store, and a page must fit the gRPC message limit on every hop.
What both must agree on lives here, beside the stubs:

- page sizes: 0 means `DEFAULT_PAGE_SIZE`, more than `MAX_PAGE_SIZE` means the maximum,
  negative is refused;
- page tokens: opaque to clients, URL-safe base64 of a small JSON object naming what
  they page (`kind`) and the request they belong to (a token of another session or
  user is refused); the orchestrator mints the agent services' transcript tokens
  when it has merged only part of a store's page;
- the byte bound: a page is filled until the next item would not fit, and a single
  transcript line larger than a whole response has its text cut (`HistoryLine.truncated`)
  rather than failing the read of the whole session forever.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from meshscope.v1 import common_pb2

DEFAULT_PAGE_SIZE = 100
"""Items per page when a request says 0."""
MAX_PAGE_SIZE = 1000
"""Most items per page; larger requests get this many."""
MAX_TOKEN_LENGTH = 16 * 1024
"""Longest page token accepted: an orchestrator token names one offset per store."""
TRUNCATED_MARKER = "\n[truncated by meshscope: {kept} of {total} bytes of this line fit in a response]"
"""Ends a transcript line's text that was cut to fit (`HistoryLine.truncated` is set)."""
_EARLIER_CUT = re.compile(
    r"\n\[truncated by meshscope: \d+ of (\d+) bytes of this line fit in a response\]\Z"
)

NAME_KEPT = 256
"""A cut line keeps at most this many characters of its speaker's name."""

MAX_OFFSET = 2**63 - 1
"""Largest transcript offset a token may hold (its length bounds every offset token's)."""

HISTORY = "history"
"""Token kind: one store's transcript (agent services), an offset into it."""
MESH_HISTORY = "mesh-history"
"""Token kind: the orchestrator's merge of every store's transcript, one offset per store."""
SESSIONS = "sessions"
"""Token kind: a user's session listing, the last listed (updated_at, session_id)."""


_FOREIGN = "is not a next_page_token this service issued"


class PageTokenError(ValueError):
    """A page token or page size the caller sent is not acceptable; the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def page_size(requested: int) -> int:
    """The page size a request means (see the module docstring); `PageTokenError` when negative."""
    if requested < 0:
        raise PageTokenError("page_size", f"must not be negative, got {requested}")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_token(kind: str, key: str, position: Any) -> str:
    """A page token for `position` in what `kind` pages, for the request about `key`."""
    raw = json.dumps({"k": kind, "r": key, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str, key: str) -> Any:
    """The position a token of `kind` for `key` holds; `PageTokenError` when it is not one."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise PageTokenError("page_token", f"must be at most {MAX_TOKEN_LENGTH} characters, got {len(token)}")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise PageTokenError("page_token", _FOREIGN) from None
    if not isinstance(decoded, dict) or decoded.get("k") != kind or "p" not in decoded:
        raise PageTokenError("page_token", _FOREIGN)
    if decoded.get("r") != key:
        raise PageTokenError("page_token", "belongs to another request (a different session or user)")
    return decoded["p"]


def offset_of(position: Any) -> int:
    """A transcript offset read from a token; `PageTokenError` when it is not one."""
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= MAX_OFFSET:
        raise PageTokenError("page_token", _FOREIGN)
    return position


def cursor_of(position: Any) -> tuple[float, str]:
    """A session-listing cursor (updated_at, session_id) read from a token."""
    if (
        isinstance(position, list)
        and len(position) == 2
        and isinstance(position[0], int | float)
        and not isinstance(position[0], bool)
        and isinstance(position[1], str)
    ):
        return float(position[0]), position[1]
    raise PageTokenError("page_token", _FOREIGN)


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def item_cost(size: int) -> int:
    """Bytes an item of `size` bytes adds to a repeated message field (tag, length, body)."""
    return 1 + _varint_size(size) + size


def fill(sizes: list[int], budget: int) -> int:
    """How many of the items with these sizes (leading ones) fit in `budget` bytes of a repeated field."""
    used = 0
    for count, size in enumerate(sizes):
        used += item_cost(size)
        if used > budget:
            return count
    return len(sizes)


def fit_line(line: common_pb2.HistoryLine, budget: int) -> common_pb2.HistoryLine:
    """`line`, with its text cut to what fits in `budget` bytes (item cost) when it alone does not.

    The cut is on a UTF-8 character boundary and ends with `TRUNCATED_MARKER`; the
    line's `truncated` flag is set, and its speaker's name is cut to `NAME_KEPT`
    characters. A line that fits is returned unchanged. The result fits any budget of
    at least 1 KiB (the agent name, name and marker need room; gRPC limits that small
    leave no room for any session page anyway).
    """
    if item_cost(line.ByteSize()) <= budget:
        return line
    encoded = line.text.encode()
    total = len(encoded)
    earlier = _EARLIER_CUT.search(line.text) if line.truncated else None
    if earlier is not None:  # cut again on a later hop: the marker keeps the original size
        encoded = line.text[: earlier.start()].encode()
        total = int(earlier.group(1))
    rest = common_pb2.HistoryLine()
    rest.CopyFrom(line)
    rest.text = ""
    rest.name = rest.name[:NAME_KEPT]  # a sender's name is the caller's input too
    rest.truncated = True
    marker_room = len(TRUNCATED_MARKER.format(kept=total, total=total).encode())
    # Everything but the text, the text's own tag and length, and the marker.
    room = budget - item_cost(rest.ByteSize()) - 1 - _varint_size(budget) - marker_room - 16
    kept = encoded[: max(0, room)].decode(errors="ignore")
    rest.text = kept + TRUNCATED_MARKER.format(kept=len(kept.encode()), total=total)
    return rest
