from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("payload", "fail_code", "fail_details", "fail_details_bin", "delay_ms", "repeat", "echo_metadata", "response_size", "empty_response")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    FAIL_CODE_FIELD_NUMBER: _ClassVar[int]
    FAIL_DETAILS_FIELD_NUMBER: _ClassVar[int]
    FAIL_DETAILS_BIN_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    REPEAT_FIELD_NUMBER: _ClassVar[int]
    ECHO_METADATA_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SIZE_FIELD_NUMBER: _ClassVar[int]
    EMPTY_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    fail_code: int
    fail_details: str
    fail_details_bin: bytes
    delay_ms: int
    repeat: int
    echo_metadata: bool
    response_size: int
    empty_response: bool
    def __init__(self, payload: _Optional[bytes] = ..., fail_code: _Optional[int] = ..., fail_details: _Optional[str] = ..., fail_details_bin: _Optional[bytes] = ..., delay_ms: _Optional[int] = ..., repeat: _Optional[int] = ..., echo_metadata: _Optional[bool] = ..., response_size: _Optional[int] = ..., empty_response: _Optional[bool] = ...) -> None: ...

class MetadataEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("payload", "index", "received", "metadata", "deadline_remaining")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_REMAINING_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    index: int
    received: int
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    deadline_remaining: float
    def __init__(self, payload: _Optional[bytes] = ..., index: _Optional[int] = ..., received: _Optional[int] = ..., metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ..., deadline_remaining: _Optional[float] = ...) -> None: ...
