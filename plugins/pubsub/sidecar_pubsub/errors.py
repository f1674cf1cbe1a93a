"""The refusals of the pubsub adapter, as the app sees them (``x-sidecar-error``)."""

from __future__ import annotations

__all__ = ["InvalidEvent", "MethodNotAllowed", "PublishFailed", "UnknownTopic"]

from sidecar import SidecarError


class PublishFailed(SidecarError):
    """The broker did not confirm the event: it may not be stored, so publish it again."""

    status, grpc_code, code = 503, 14, "publish_failed"  # 14: UNAVAILABLE


class UnknownTopic(SidecarError):
    status, grpc_code, code = 404, 5, "unknown_topic"  # 5: NOT_FOUND


class InvalidEvent(SidecarError):
    status, grpc_code, code = 400, 3, "invalid_event"  # 3: INVALID_ARGUMENT


class MethodNotAllowed(SidecarError):
    status, grpc_code, code = 405, 12, "method_not_allowed"  # 12: UNIMPLEMENTED
    headers = (("allow", "POST"),)
