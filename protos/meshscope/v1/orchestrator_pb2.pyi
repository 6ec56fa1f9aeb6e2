import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from meshscope.v1 import agent_pb2 as _agent_pb2
from meshscope.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("target", "input", "session_id", "user_id", "timeout", "metadata")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    target: str
    input: _common_pb2.Message
    session_id: str
    user_id: str
    timeout: _duration_pb2.Duration
    metadata: _struct_pb2.Struct
    def __init__(self, target: _Optional[str] = ..., input: _Optional[_Union[_common_pb2.Message, _Mapping]] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RunStart(_message.Message):
    __slots__ = ("target", "kind", "session_id")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    target: str
    kind: str
    session_id: str
    def __init__(self, target: _Optional[str] = ..., kind: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class RunEnd(_message.Message):
    __slots__ = ("steps", "replicas", "usage", "duration_ms", "output")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    steps: int
    replicas: _containers.RepeatedScalarFieldContainer[str]
    usage: _common_pb2.Usage
    duration_ms: float
    output: _common_pb2.Message
    def __init__(self, steps: _Optional[int] = ..., replicas: _Optional[_Iterable[str]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., duration_ms: _Optional[float] = ..., output: _Optional[_Union[_common_pb2.Message, _Mapping]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("sequence", "run_id", "step", "agent", "replica", "run_start", "agent_event", "run_end", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    RUN_START_FIELD_NUMBER: _ClassVar[int]
    AGENT_EVENT_FIELD_NUMBER: _ClassVar[int]
    RUN_END_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    run_id: str
    step: str
    agent: str
    replica: str
    run_start: RunStart
    agent_event: _agent_pb2.AgentEvent
    run_end: RunEnd
    error: _agent_pb2.ErrorEvent
    def __init__(self, sequence: _Optional[int] = ..., run_id: _Optional[str] = ..., step: _Optional[str] = ..., agent: _Optional[str] = ..., replica: _Optional[str] = ..., run_start: _Optional[_Union[RunStart, _Mapping]] = ..., agent_event: _Optional[_Union[_agent_pb2.AgentEvent, _Mapping]] = ..., run_end: _Optional[_Union[RunEnd, _Mapping]] = ..., error: _Optional[_Union[_agent_pb2.ErrorEvent, _Mapping]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Replica(_message.Message):
    __slots__ = ("id", "address", "health", "in_flight", "meta")
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    health: str
    in_flight: int
    meta: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., health: _Optional[str] = ..., in_flight: _Optional[int] = ..., meta: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("name", "card", "replicas")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    card: _common_pb2.AgentCard
    replicas: _containers.RepeatedCompositeFieldContainer[Replica]
    def __init__(self, name: _Optional[str] = ..., card: _Optional[_Union[_common_pb2.AgentCard, _Mapping]] = ..., replicas: _Optional[_Iterable[_Union[Replica, _Mapping]]] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ...) -> None: ...

class ListPipelinesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PipelineInfo(_message.Message):
    __slots__ = ("name", "kind", "description", "agents")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    description: str
    agents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., description: _Optional[str] = ..., agents: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPipelinesResponse(_message.Message):
    __slots__ = ("pipelines",)
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedCompositeFieldContainer[PipelineInfo]
    def __init__(self, pipelines: _Optional[_Iterable[_Union[PipelineInfo, _Mapping]]] = ...) -> None: ...
