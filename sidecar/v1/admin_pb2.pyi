from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_UNSPECIFIED: _ClassVar[State]
    STATE_STARTING: _ClassVar[State]
    STATE_READY: _ClassVar[State]
    STATE_DRAINING: _ClassVar[State]
    STATE_STOPPED: _ClassVar[State]

class Health(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_UNKNOWN: _ClassVar[Health]
    HEALTH_HEALTHY: _ClassVar[Health]
    HEALTH_UNHEALTHY: _ClassVar[Health]
STATE_UNSPECIFIED: State
STATE_STARTING: State
STATE_READY: State
STATE_DRAINING: State
STATE_STOPPED: State
HEALTH_UNKNOWN: Health
HEALTH_HEALTHY: Health
HEALTH_UNHEALTHY: Health

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Listener(_message.Message):
    __slots__ = ("name", "address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("version", "state", "uptime_seconds", "config_file", "listeners")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FILE_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    state: State
    uptime_seconds: float
    config_file: str
    listeners: _containers.RepeatedCompositeFieldContainer[Listener]
    def __init__(self, version: _Optional[str] = ..., state: _Optional[_Union[State, str]] = ..., uptime_seconds: _Optional[float] = ..., config_file: _Optional[str] = ..., listeners: _Optional[_Iterable[_Union[Listener, _Mapping]]] = ...) -> None: ...

class ListUpstreamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUpstreamsResponse(_message.Message):
    __slots__ = ("upstreams",)
    UPSTREAMS_FIELD_NUMBER: _ClassVar[int]
    upstreams: _containers.RepeatedCompositeFieldContainer[Upstream]
    def __init__(self, upstreams: _Optional[_Iterable[_Union[Upstream, _Mapping]]] = ...) -> None: ...

class Upstream(_message.Message):
    __slots__ = ("name", "adapter", "url", "health", "services", "timeout_seconds", "circuit_breaker", "concurrency", "rate_limits", "details")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    adapter: str
    url: str
    health: Health
    services: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: float
    circuit_breaker: CircuitBreaker
    concurrency: Concurrency
    rate_limits: _containers.RepeatedCompositeFieldContainer[RateLimit]
    details: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., adapter: _Optional[str] = ..., url: _Optional[str] = ..., health: _Optional[_Union[Health, str]] = ..., services: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[float] = ..., circuit_breaker: _Optional[_Union[CircuitBreaker, _Mapping]] = ..., concurrency: _Optional[_Union[Concurrency, _Mapping]] = ..., rate_limits: _Optional[_Iterable[_Union[RateLimit, _Mapping]]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CircuitBreaker(_message.Message):
    __slots__ = ("state", "consecutive_failures", "trip_after", "open_for_seconds", "half_open_in_seconds")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[CircuitBreaker.State]
        STATE_CLOSED: _ClassVar[CircuitBreaker.State]
        STATE_OPEN: _ClassVar[CircuitBreaker.State]
        STATE_HALF_OPEN: _ClassVar[CircuitBreaker.State]
    STATE_UNSPECIFIED: CircuitBreaker.State
    STATE_CLOSED: CircuitBreaker.State
    STATE_OPEN: CircuitBreaker.State
    STATE_HALF_OPEN: CircuitBreaker.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    TRIP_AFTER_FIELD_NUMBER: _ClassVar[int]
    OPEN_FOR_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    state: CircuitBreaker.State
    consecutive_failures: int
    trip_after: int
    open_for_seconds: float
    half_open_in_seconds: float
    def __init__(self, state: _Optional[_Union[CircuitBreaker.State, str]] = ..., consecutive_failures: _Optional[int] = ..., trip_after: _Optional[int] = ..., open_for_seconds: _Optional[float] = ..., half_open_in_seconds: _Optional[float] = ...) -> None: ...

class Concurrency(_message.Message):
    __slots__ = ("in_flight", "max_in_flight")
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    in_flight: int
    max_in_flight: int
    def __init__(self, in_flight: _Optional[int] = ..., max_in_flight: _Optional[int] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("scope", "is_global", "rate", "burst", "key", "shadow", "on_limit", "backend")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    IS_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    ON_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    scope: str
    is_global: bool
    rate: str
    burst: int
    key: str
    shadow: bool
    on_limit: str
    backend: str
    def __init__(self, scope: _Optional[str] = ..., is_global: _Optional[bool] = ..., rate: _Optional[str] = ..., burst: _Optional[int] = ..., key: _Optional[str] = ..., shadow: _Optional[bool] = ..., on_limit: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("applied", "problems", "restart_required")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    RESTART_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    restart_required: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, applied: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., restart_required: _Optional[_Iterable[str]] = ...) -> None: ...
