"""Hypothesis strategies for protobuf requests, from the messages' own descriptors: every field.

`requests(cls)` draws the wire bytes of a `cls` request: each field set or not, with values from the
whole range of its type (negative and huge integers, enum numbers no enum declares, long and
astral-plane strings, NaN and infinite doubles, out-of-range Durations, Structs nested deep), and
then, sometimes, the bytes broken on purpose: a string field holding invalid UTF-8, fields no
message declares, the message cut short, or no message at all. Written here because the one
library for it (hypothesis-protobuf) has not kept up with protobuf 4+.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import duration_pb2, message_factory, struct_pb2
from google.protobuf.message import Message
from hypothesis import strategies as st

__all__ = ["requests"]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
MAX_DEPTH = 3
"""Message fields nested this deep are left unset (Structs go deeper: `structs`)."""


def _texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=8),
        st.sampled_from(["", "analyst", "writer", "analysis", "nobody", "../../etc/passwd", "\x00", " "]),
        st.integers(1_000, 200_000).map(lambda n: "x" * n),
    )


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), _texts())
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts(), inner, max_size=4),
        max_leaves=20,
    )


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


def structs() -> st.SearchStrategy[struct_pb2.Struct]:
    def build(value: dict[str, Any]) -> struct_pb2.Struct:
        struct = struct_pb2.Struct()
        struct.update(value)
        return struct

    nested = st.dictionaries(_texts(), _json_values(), max_size=5)
    return st.one_of(nested, st.integers(10, 150).map(_deep)).map(build)


def durations() -> st.SearchStrategy[duration_pb2.Duration]:
    return st.builds(
        duration_pb2.Duration,
        seconds=st.one_of(st.integers(-10, 10), st.integers(*INT64)),
        nanos=st.one_of(st.integers(0, 999_999_999), st.integers(*INT32)),
    )


def _scalar(field: d.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == d.FieldDescriptor.TYPE_STRING:
        return _texts()
    if kind == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if kind == d.FieldDescriptor.TYPE_DOUBLE else 32)
    if kind == d.FieldDescriptor.TYPE_ENUM:
        return st.integers(*INT32)  # declared or not: proto3 enums are open
    if kind in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if kind in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64):
        return st.integers(*INT64)
    return st.integers(*INT32)


def _message_value(message: d.Descriptor, depth: int) -> st.SearchStrategy[Any]:
    if message.full_name == "google.protobuf.Struct":
        return structs()
    if message.full_name == "google.protobuf.Duration":
        return durations()
    return messages(message, depth + 1)


def messages(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Message]:
    """Instances of `descriptor`'s message, any subset of its fields set (see the module docstring)."""
    cls: Any = message_factory.GetMessageClass(descriptor)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        if depth > MAX_DEPTH:
            return message  # type: ignore[no-any-return]
        for field in descriptor.fields:
            if not draw(st.booleans()):
                continue
            is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
            if is_map:
                entry: Any = field.message_type
                key_field = entry.fields_by_name["key"]
                value_field = entry.fields_by_name["value"]
                entries = draw(
                    st.dictionaries(_scalar(key_field), _field_value(value_field, depth), max_size=3)
                )
                for key, value in entries.items():
                    if value_field.message_type is not None:
                        getattr(message, field.name)[key].CopyFrom(value)
                    else:
                        getattr(message, field.name)[key] = value
            elif field.is_repeated:
                values = draw(st.lists(_field_value(field, depth), max_size=3))
                target = getattr(message, field.name)
                for value in values:
                    if field.message_type is not None:
                        target.add().CopyFrom(value)
                    else:
                        target.append(value)
            elif field.message_type is not None:
                getattr(message, field.name).CopyFrom(draw(_message_value(field.message_type, depth)))
            else:
                setattr(message, field.name, draw(_scalar(field)))
        return message  # type: ignore[no-any-return]

    return build()


def _field_value(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return _message_value(field.message_type, depth)
    return _scalar(field)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string_fields(descriptor: Any) -> list[int]:
    return [f.number for f in descriptor.fields if f.type == d.FieldDescriptor.TYPE_STRING] or [1]


def requests(cls: type[Message]) -> st.SearchStrategy[bytes]:
    """Wire bytes of a `cls` request, well-formed or broken (see the module docstring)."""
    descriptor = cls.DESCRIPTOR

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        wire = draw(messages(descriptor)).SerializeToString()
        damage = draw(st.sampled_from(["none", "none", "none", "utf8", "unknown", "cut", "noise"]))
        if damage == "utf8":  # a declared string field holding bytes that are not UTF-8
            number = draw(st.sampled_from(_string_fields(descriptor)))
            junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\xf0\x28\x8c\xbc"]))
            wire += _varint(number << 3 | 2) + _varint(len(junk)) + junk
        elif damage == "unknown":  # a field number no message declares, any wire type
            number = draw(st.integers(100, 536_870_911))
            wire += _varint(number << 3 | draw(st.sampled_from([0, 1, 2, 5]))) + draw(
                st.binary(min_size=1, max_size=9)
            )
        elif damage == "cut" and wire:
            wire = wire[: draw(st.integers(0, len(wire) - 1))]
        elif damage == "noise":
            wire = draw(st.binary(max_size=64))
        return wire

    return build()
