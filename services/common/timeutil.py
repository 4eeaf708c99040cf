"""Conversions between seconds, milliseconds and protobuf Duration/Timestamp."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2


def duration_seconds(value: duration_pb2.Duration, present: bool = True) -> float | None:
    """Seconds in ``value``, or None when absent or not positive."""
    if not present:
        return None
    seconds = value.seconds + value.nanos / 1e9
    return seconds if seconds > 0 else None


def to_duration(seconds: float | None) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    if seconds:
        out.FromNanoseconds(int(seconds * 1e9))
    return out


def ms_timestamp(ms: int) -> timestamp_pb2.Timestamp | None:
    if not ms:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out
