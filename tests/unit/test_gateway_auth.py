"""The gateway's authentication of a call's API key, against a real tokens file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.enrollment import DEFAULT_TENANT, TokenFile
from services.common.errors import Unauthenticated
from services.gateway.auth import Authenticator


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("user-agent", "test"), ("authorization", f"Bearer {token}")]


def test_open_mode_makes_every_call_the_default_tenants() -> None:
    auth = Authenticator(None)
    assert auth.open
    assert auth.tenant(None) == DEFAULT_TENANT
    assert auth.tenant(_bearer("anything")) == DEFAULT_TENANT


def test_a_key_gives_its_tenant_and_a_missing_or_wrong_one_is_refused(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "keys")
    alice = tokens.issue("alice", "client", tenant="a")
    worker = tokens.issue("w1", "worker")
    auth = Authenticator(tokens.path)
    assert not auth.open
    assert auth.tenant(_bearer(alice)) == "a"
    assert auth.tenant(_bearer(alice)) == "a"  # remembered
    for metadata, reason in [
        (None, "API_KEY_MISSING"),
        ([("authorization", "Basic abc")], "API_KEY_MISSING"),
        (_bearer("faas_alice." + "x" * 43), "API_KEY_INVALID"),
        (_bearer("junk"), "API_KEY_INVALID"),
        (_bearer(worker), "API_KEY_INVALID"),  # a worker's token is no client key
    ]:
        with pytest.raises(Unauthenticated) as refused:
            auth.tenant(metadata)
        assert refused.value.reason == reason
    with pytest.raises(Unauthenticated) as missing:
        auth.tenant(None)
    assert "authorization: Bearer" in missing.value.message


def test_a_revoked_key_is_refused_after_the_recheck_without_a_restart(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "keys")
    alice = tokens.issue("alice", "client", tenant="a")
    clock = Clock()
    auth = Authenticator(tokens.path, recheck_seconds=0.5, clock=clock)
    assert auth.tenant(_bearer(alice)) == "a"
    assert tokens.revoke("alice")
    clock.now += 0.6
    with pytest.raises(Unauthenticated):
        auth.tenant(_bearer(alice))
    bob = tokens.issue("bob", "client", tenant="b")  # a new key works at the next look
    clock.now += 0.6
    assert auth.tenant(_bearer(bob)) == "b"


def test_a_keys_file_that_does_not_exist_lets_no_one_in(tmp_path: Path) -> None:
    auth = Authenticator(tmp_path / "none")
    with pytest.raises(Unauthenticated):
        auth.tenant(_bearer("faas_alice." + "x" * 43))
