from google.protobuf import struct_pb2 as _struct_pb2
from meshscope.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BlockKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLOCK_KIND_UNSPECIFIED: _ClassVar[BlockKind]
    BLOCK_KIND_TEXT: _ClassVar[BlockKind]
    BLOCK_KIND_THINKING: _ClassVar[BlockKind]
    BLOCK_KIND_DATA: _ClassVar[BlockKind]
BLOCK_KIND_UNSPECIFIED: BlockKind
BLOCK_KIND_TEXT: BlockKind
BLOCK_KIND_THINKING: BlockKind
BLOCK_KIND_DATA: BlockKind

class InvokeRequest(_message.Message):
    __slots__ = ("agent", "input", "session_id", "user_id", "metadata")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    agent: str
    input: _common_pb2.Message
    session_id: str
    user_id: str
    metadata: _struct_pb2.Struct
    def __init__(self, agent: _Optional[str] = ..., input: _Optional[_Union[_common_pb2.Message, _Mapping]] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetCardRequest(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    def __init__(self, agent: _Optional[str] = ...) -> None: ...

class ReplyStart(_message.Message):
    __slots__ = ("session_id", "name", "role")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    role: _common_pb2.Role
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class ReplyEnd(_message.Message):
    __slots__ = ("finished_reason", "message")
    FINISHED_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    finished_reason: str
    message: _common_pb2.Message
    def __init__(self, finished_reason: _Optional[str] = ..., message: _Optional[_Union[_common_pb2.Message, _Mapping]] = ...) -> None: ...

class ModelCallStart(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class ModelCallEnd(_message.Message):
    __slots__ = ("usage", "finished_reason")
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_REASON_FIELD_NUMBER: _ClassVar[int]
    usage: _common_pb2.Usage
    finished_reason: str
    def __init__(self, usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., finished_reason: _Optional[str] = ...) -> None: ...

class BlockStart(_message.Message):
    __slots__ = ("block_id", "kind", "media_type", "name")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    kind: BlockKind
    media_type: str
    name: str
    def __init__(self, block_id: _Optional[str] = ..., kind: _Optional[_Union[BlockKind, str]] = ..., media_type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("block_id", "delta")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    delta: str
    def __init__(self, block_id: _Optional[str] = ..., delta: _Optional[str] = ...) -> None: ...

class ThinkingDelta(_message.Message):
    __slots__ = ("block_id", "delta")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    delta: str
    def __init__(self, block_id: _Optional[str] = ..., delta: _Optional[str] = ...) -> None: ...

class DataDelta(_message.Message):
    __slots__ = ("block_id", "media_type", "data", "url")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    media_type: str
    data: bytes
    url: str
    def __init__(self, block_id: _Optional[str] = ..., media_type: _Optional[str] = ..., data: _Optional[bytes] = ..., url: _Optional[str] = ...) -> None: ...

class BlockEnd(_message.Message):
    __slots__ = ("block_id", "kind", "text")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    kind: BlockKind
    text: str
    def __init__(self, block_id: _Optional[str] = ..., kind: _Optional[_Union[BlockKind, str]] = ..., text: _Optional[str] = ...) -> None: ...

class ToolCallStart(_message.Message):
    __slots__ = ("tool_call_id", "name")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    name: str
    def __init__(self, tool_call_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ToolCallDelta(_message.Message):
    __slots__ = ("tool_call_id", "delta")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    delta: str
    def __init__(self, tool_call_id: _Optional[str] = ..., delta: _Optional[str] = ...) -> None: ...

class ToolCallEnd(_message.Message):
    __slots__ = ("tool_call_id",)
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    def __init__(self, tool_call_id: _Optional[str] = ...) -> None: ...

class ToolResultStart(_message.Message):
    __slots__ = ("tool_call_id", "name")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    name: str
    def __init__(self, tool_call_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ToolResultDelta(_message.Message):
    __slots__ = ("tool_call_id", "part")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    part: _common_pb2.Part
    def __init__(self, tool_call_id: _Optional[str] = ..., part: _Optional[_Union[_common_pb2.Part, _Mapping]] = ...) -> None: ...

class ToolResultEnd(_message.Message):
    __slots__ = ("tool_call_id", "state", "metadata")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    state: _common_pb2.ToolResultState
    metadata: _struct_pb2.Struct
    def __init__(self, tool_call_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.ToolResultState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class HintEvent(_message.Message):
    __slots__ = ("block_id", "hint")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    hint: _common_pb2.Hint
    def __init__(self, block_id: _Optional[str] = ..., hint: _Optional[_Union[_common_pb2.Hint, _Mapping]] = ...) -> None: ...

class CustomEvent(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ErrorEvent(_message.Message):
    __slots__ = ("code", "message", "retryable", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    retryable: bool
    reason: _common_pb2.ErrorReason
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., reason: _Optional[_Union[_common_pb2.ErrorReason, str]] = ...) -> None: ...

class AgentEvent(_message.Message):
    __slots__ = ("sequence", "event_id", "reply_id", "agent", "created_at_ms", "reply_start", "reply_end", "model_call_start", "model_call_end", "block_start", "text_delta", "thinking_delta", "data_delta", "block_end", "tool_call_start", "tool_call_delta", "tool_call_end", "tool_result_start", "tool_result_delta", "tool_result_end", "hint", "custom", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REPLY_START_FIELD_NUMBER: _ClassVar[int]
    REPLY_END_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALL_START_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALL_END_FIELD_NUMBER: _ClassVar[int]
    BLOCK_START_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    THINKING_DELTA_FIELD_NUMBER: _ClassVar[int]
    DATA_DELTA_FIELD_NUMBER: _ClassVar[int]
    BLOCK_END_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_START_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_END_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_START_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_END_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    event_id: str
    reply_id: str
    agent: str
    created_at_ms: int
    reply_start: ReplyStart
    reply_end: ReplyEnd
    model_call_start: ModelCallStart
    model_call_end: ModelCallEnd
    block_start: BlockStart
    text_delta: TextDelta
    thinking_delta: ThinkingDelta
    data_delta: DataDelta
    block_end: BlockEnd
    tool_call_start: ToolCallStart
    tool_call_delta: ToolCallDelta
    tool_call_end: ToolCallEnd
    tool_result_start: ToolResultStart
    tool_result_delta: ToolResultDelta
    tool_result_end: ToolResultEnd
    hint: HintEvent
    custom: CustomEvent
    error: ErrorEvent
    def __init__(self, sequence: _Optional[int] = ..., event_id: _Optional[str] = ..., reply_id: _Optional[str] = ..., agent: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., reply_start: _Optional[_Union[ReplyStart, _Mapping]] = ..., reply_end: _Optional[_Union[ReplyEnd, _Mapping]] = ..., model_call_start: _Optional[_Union[ModelCallStart, _Mapping]] = ..., model_call_end: _Optional[_Union[ModelCallEnd, _Mapping]] = ..., block_start: _Optional[_Union[BlockStart, _Mapping]] = ..., text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., thinking_delta: _Optional[_Union[ThinkingDelta, _Mapping]] = ..., data_delta: _Optional[_Union[DataDelta, _Mapping]] = ..., block_end: _Optional[_Union[BlockEnd, _Mapping]] = ..., tool_call_start: _Optional[_Union[ToolCallStart, _Mapping]] = ..., tool_call_delta: _Optional[_Union[ToolCallDelta, _Mapping]] = ..., tool_call_end: _Optional[_Union[ToolCallEnd, _Mapping]] = ..., tool_result_start: _Optional[_Union[ToolResultStart, _Mapping]] = ..., tool_result_delta: _Optional[_Union[ToolResultDelta, _Mapping]] = ..., tool_result_end: _Optional[_Union[ToolResultEnd, _Mapping]] = ..., hint: _Optional[_Union[HintEvent, _Mapping]] = ..., custom: _Optional[_Union[CustomEvent, _Mapping]] = ..., error: _Optional[_Union[ErrorEvent, _Mapping]] = ...) -> None: ...
