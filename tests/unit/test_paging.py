"""The paging rules both sides of the wire share (meshscope.paging)."""

from __future__ import annotations

import pytest

from meshscope import paging
from meshscope.v1 import common_pb2


def test_page_sizes_default_cap_and_refuse_negative() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE == 100
    assert paging.page_size(7) == 7
    assert paging.page_size(10**9) == paging.MAX_PAGE_SIZE == 1000
    with pytest.raises(paging.PageTokenError, match=r"^page_size: must not be negative, got -1$"):
        paging.page_size(-1)


def test_tokens_round_trip_and_are_bound_to_their_request() -> None:
    token = paging.encode_token(paging.HISTORY, "s1", 42)
    assert paging.offset_of(paging.decode_token(token, paging.HISTORY, "s1")) == 42
    with pytest.raises(paging.PageTokenError, match="belongs to another request"):
        paging.decode_token(token, paging.HISTORY, "s2")
    for bad in ("", "!!!", "bm90IGpzb24", paging.encode_token(paging.SESSIONS, "s1", 42)):
        with pytest.raises(paging.PageTokenError, match=r"^page_token: is not a next_page_token"):
            paging.decode_token(bad, paging.HISTORY, "s1")
    for position in (-1, True, "3", paging.MAX_OFFSET + 1):
        with pytest.raises(paging.PageTokenError):
            paging.offset_of(position)
    cursors: list[object] = [[1.5], ["x", "y"], [True, "s"], {"a": 1}]
    for cursor in cursors:
        with pytest.raises(paging.PageTokenError):
            paging.cursor_of(cursor)
    assert paging.cursor_of([1.5, "s"]) == (1.5, "s")


def test_fill_counts_what_fits_with_field_overhead() -> None:
    assert paging.fill([10, 10, 10], 24) == 2  # each costs 1 tag + 1 length + 10
    assert paging.fill([10, 10, 10], 23) == 1
    assert paging.fill([300], 302) == 0  # a 300-byte length takes two varint bytes
    assert paging.fill([300], 303) == 1
    assert paging.fill([], 0) == 0


@pytest.mark.parametrize("budget", [1024, 4096, 65536])
def test_a_line_too_large_is_cut_to_fit_on_a_character_boundary(budget: int) -> None:
    line = common_pb2.HistoryLine(
        agent="writer", role="assistant", name="n" * 5000, text="日本" * 50_000, at=1.0
    )
    cut = paging.fit_line(line, budget)
    assert cut.truncated
    assert paging.item_cost(cut.ByteSize()) <= budget
    kept, marker = cut.text.split("\n[truncated by meshscope: ")
    assert (
        marker == f"{len(kept.encode())} of {len(line.text.encode())} bytes of this line fit in a response]"
    )
    assert line.text.startswith(kept)
    assert len(cut.name) == paging.NAME_KEPT
    again = paging.fit_line(cut, budget // 2)  # a later hop with a smaller limit keeps the original size
    assert again.text.endswith(f" of {len(line.text.encode())} bytes of this line fit in a response]")
    assert paging.item_cost(again.ByteSize()) <= budget // 2
    small = common_pb2.HistoryLine(agent="a", text="short")
    assert paging.fit_line(small, budget) is small
