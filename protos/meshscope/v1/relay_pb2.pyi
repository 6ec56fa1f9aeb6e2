from meshscope.v1 import agent_pb2 as _agent_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentEventHead(_message.Message):
    __slots__ = ("reply_id", "agent", "reply_start", "reply_end")
    REPLY_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REPLY_START_FIELD_NUMBER: _ClassVar[int]
    REPLY_END_FIELD_NUMBER: _ClassVar[int]
    reply_id: str
    agent: str
    reply_start: bytes
    reply_end: _agent_pb2.ReplyEnd
    def __init__(self, reply_id: _Optional[str] = ..., agent: _Optional[str] = ..., reply_start: _Optional[bytes] = ..., reply_end: _Optional[_Union[_agent_pb2.ReplyEnd, _Mapping]] = ...) -> None: ...

class RelayedRunEvent(_message.Message):
    __slots__ = ("sequence", "run_id", "step", "agent", "replica", "agent_event")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    AGENT_EVENT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    run_id: str
    step: str
    agent: str
    replica: str
    agent_event: bytes
    def __init__(self, sequence: _Optional[int] = ..., run_id: _Optional[str] = ..., step: _Optional[str] = ..., agent: _Optional[str] = ..., replica: _Optional[str] = ..., agent_event: _Optional[bytes] = ...) -> None: ...
