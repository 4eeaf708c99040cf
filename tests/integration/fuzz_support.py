"""What the REST and gRPC fuzzers share: the caller's credentials, hostile pickles, and a count
of what the platform stored.

Credentials live here, in one place: on a platform with API keys (``api_keys=True``, as
``make run --api-keys``) ``credentials`` issues the fuzzers a key of their own tenant, sent as
REST headers and gRPC metadata; on an open platform they send none.
"""

from __future__ import annotations

import base64
import codecs
import pickle
import struct
from dataclasses import dataclass, field

import dill
import redis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from services.common.store.keys import Keys
from services.gateway.limits import DEFAULT_MAX_PAYLOAD_BYTES
from services.launcher import Platform

# Bounded and reproducible in CI: the same examples every run, no example database, no deadline
# (the machine is shared), and no health check for slow data (each example is a network call).
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=(
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ),
)


@dataclass(frozen=True)
class Credentials:
    """What a fuzzer sends with every call: REST headers and gRPC metadata."""

    headers: dict[str, str] = field(default_factory=dict)
    metadata: tuple[tuple[str, str], ...] = ()
    api_key: str | None = None


def credentials(platform: Platform) -> Credentials:
    """The caller's credentials on ``platform``: a key of tenant ``fuzz`` when its gateway has
    API keys, else none (it runs open)."""
    if platform.api_keys is None:
        return Credentials()
    key = platform.api_keys.issue("fuzz", "client", tenant="fuzz")
    bearer = f"Bearer {key}"
    return Credentials({"Authorization": bearer}, (("authorization", bearer),), key)


# --- what the platform stored --------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """How many function, task and idempotency records the store holds."""

    functions: int
    tasks: int
    requests: int


class StoredRecords:
    """Counts the platform's records in Redis, as its admin user (the only one allowed SCAN)."""

    def __init__(self, platform: Platform, keys: Keys | None = None) -> None:
        self._client = redis.Redis.from_url(platform.redis_url)
        self._keys = keys or Keys()

    def close(self) -> None:
        self._client.close()

    def _count(self, pattern: str) -> int:
        return sum(1 for _ in self._client.scan_iter(match=pattern, count=1000))

    def now(self) -> Records:
        return Records(
            functions=self._count(self._keys.function("*")),
            tasks=self._count(self._keys.task("*")),
            requests=self._count(self._keys.request("*", tenant="*")),
        )


# --- hostile pickles ---------------------------------------------------------------------------


def _sample_function(x: int) -> int:
    return x + 1


# Real pickles of the kinds clients send, to cut and to flip bits in.
SAMPLES: tuple[bytes, ...] = (
    dill.dumps(_sample_function),
    dill.dumps(lambda x: x * 2),
    dill.dumps(((1, "two"), {"three": 3.0})),
    dill.dumps(((), {})),
    pickle.dumps([1, 2, 3], protocol=0),
    pickle.dumps({"a": b"b"}, protocol=2),
    pickle.dumps("text", protocol=5),
)

# Opcodes that declare a length, each followed by an absurd one: a walker that trusts the length
# allocates or waits for bytes that never come.
_LENGTH_OPCODES: tuple[bytes, ...] = (
    b"\x8e" + struct.pack("<Q", 2**63 - 1),  # BINBYTES8
    b"\x8d" + struct.pack("<Q", 2**63 - 1),  # BINUNICODE8
    b"\x96" + struct.pack("<Q", 2**64 - 1),  # BYTEARRAY8
    b"\x95" + struct.pack("<Q", 2**63),  # FRAME
    b"B" + struct.pack("<I", 2**32 - 1),  # BINBYTES
    b"X" + struct.pack("<I", 2**32 - 1),  # BINUNICODE
    b"T" + struct.pack("<i", -1),  # BINSTRING, negative
    b"\x8b" + struct.pack("<i", -(2**31)),  # LONG4, negative
    b"\x8a\xff",  # LONG1 of 255 bytes
    b"C\xff",  # SHORT_BINBYTES of 255 bytes
)


class Hostile:
    """A hostile payload and the recipe that made it: short to print when a case fails (a
    Hypothesis report of 16 MiB of bytes helps no one), enough to make it again. A plain class:
    Hypothesis prints a dataclass field by field, whatever its ``__repr__`` says.
    """

    __slots__ = ("data", "recipe")

    def __init__(self, recipe: str, data: bytes) -> None:
        self.recipe = recipe
        self.data = data

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 96 else self.data[:96] + b"..."
        return f"Hostile({self.recipe}, {len(self.data)} bytes: {shown!r})"


def _random(data: bytes) -> Hostile:
    return Hostile("random bytes", data)


def _sample(index: int) -> Hostile:
    return Hostile(f"SAMPLES[{index}]", SAMPLES[index])


def _truncated(index: int, fraction: float) -> Hostile:
    sample = SAMPLES[index]
    return Hostile(
        f"SAMPLES[{index}][:{fraction:.3f} of it]", sample[: int(len(sample) * fraction)]
    )


def _flipped(index: int, position: int, bit: int) -> Hostile:
    data = bytearray(SAMPLES[index])
    position %= len(data)
    data[position] ^= 1 << bit
    return Hostile(f"SAMPLES[{index}] with bit {bit} of byte {position} flipped", bytes(data))


def _declared(proto: bytes, opcode: int, tail: bytes) -> Hostile:
    return Hostile(
        f"_LENGTH_OPCODES[{opcode}] after {proto!r}", proto + _LENGTH_OPCODES[opcode] + tail
    )


def _nested(opener: bytes, depth: int) -> Hostile:
    return Hostile(f"{opener!r} * {depth}", b"\x80\x04" + opener * depth + b".")


def _near_limit(size: int) -> Hostile:
    """A well-formed pickle of one bytes value, ``size`` bytes long in all (a plain value)."""
    head = b"\x80\x04\x8e"
    filler = size - len(head) - 8 - 1
    data = head + struct.pack("<Q", filler) + b"\0" * filler + b"."
    return Hostile(f"one bytes value, {size} bytes in all", data)


def hostile_pickles(
    limit: int = DEFAULT_MAX_PAYLOAD_BYTES, near_limit: bool = True
) -> st.SearchStrategy[Hostile]:
    """Payloads a careless or hostile client sends: random bytes, truncated and bit-flipped dill
    pickles, absurd declared lengths, deep nesting, and well-formed ones a byte either side of
    the size limit (with ``near_limit``; else 1 KiB and 64 KiB ones). None is likely to run
    code when unpickled: the samples name only this
    module and dill's own helpers, and a flipped bit makes a name that does not import.
    """
    samples = st.integers(0, len(SAMPLES) - 1)
    sizes = [limit - 1, limit, limit + 1] if near_limit else [1024, 64 * 1024]
    return st.one_of(
        st.binary(max_size=2048).map(_random),
        samples.map(_sample),
        st.builds(_truncated, samples, st.floats(0.0, 0.999)),
        st.builds(_flipped, samples, st.integers(0, 10**6), st.integers(0, 7)),
        st.builds(
            _declared,
            st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]),
            st.integers(0, len(_LENGTH_OPCODES) - 1),
            st.binary(max_size=64),
        ),
        st.builds(_nested, st.sampled_from([b"(", b"]", b"}", b")"]), st.integers(1, 200_000)),
        st.sampled_from(sizes).map(_near_limit),
    )


def base64_text(data: bytes, mime: bool) -> str:
    """``data`` as the REST contract sends it: MIME base64 (newlines) or plain base64."""
    if mime:
        return codecs.encode(data, "base64").decode()
    return base64.b64encode(data).decode()
