"""The SDK's and the CLI's side of API keys and quotas, without a network: the key from an
argument or ``FAAS_API_KEY``, AuthenticationError and QuotaExceeded from gRPC statuses, the CLI's
one-line errors and exit codes, and ``faas keys`` on a keys file."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import grpc
import pytest
from faas import AuthenticationError, QuotaExceeded, errors
from faas._auth import bearer_interceptors, resolve_api_key
from faas.cli import _exit, build_parser, main
from faas.cli import _fail as fail  # type: ignore[attr-defined]
from faas.cli._commands import Session

from services.common import errors as server_errors
from services.common.enrollment import TokenFile


class _RpcError(grpc.RpcError):
    """A failed call with the rich status the gateway sends for ``error``."""

    def __init__(self, error: server_errors.FaaSError) -> None:
        status = server_errors.to_status(error)
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return tuple(self._status.trailing_metadata)


def test_the_key_comes_from_the_argument_else_the_environment() -> None:
    assert resolve_api_key("faas_a.b", {"FAAS_API_KEY": "faas_c.d"}) == "faas_a.b"
    assert resolve_api_key(None, {"FAAS_API_KEY": " faas_c.d\n"}) == "faas_c.d"
    assert resolve_api_key(None, {}) is None
    assert resolve_api_key("", {"FAAS_API_KEY": "faas_c.d"}) is None  # "" means: no key
    with pytest.raises(ValueError, match="printable ASCII"):
        resolve_api_key("two words", {})


def test_one_interceptor_of_each_kind_and_none_shows_the_key() -> None:
    kinds = (
        grpc.aio.UnaryUnaryClientInterceptor,
        grpc.aio.UnaryStreamClientInterceptor,
        grpc.aio.StreamUnaryClientInterceptor,
        grpc.aio.StreamStreamClientInterceptor,
    )
    interceptors = bearer_interceptors("faas_k.secret")
    for interceptor, kind in zip(interceptors, kinds, strict=True):
        assert isinstance(interceptor, kind)
        assert "secret" not in repr(interceptor)


@pytest.mark.parametrize("reason", ["API_KEY_MISSING", "API_KEY_INVALID"])
def test_unauthenticated_is_an_authentication_error(reason: str) -> None:
    error = errors.from_rpc_error(_RpcError(server_errors.Unauthenticated("no key", reason)))
    assert type(error) is AuthenticationError
    assert (error.code, error.reason, str(error)) == ("UNAUTHENTICATED", reason, "no key")


def test_a_quota_is_quota_exceeded_with_retry_after_and_a_size_stays_payload_too_large() -> None:
    quota = server_errors.QuotaExceeded("too fast", "RATE_LIMITED", 1.5)
    error = errors.from_rpc_error(_RpcError(quota))
    assert type(error) is QuotaExceeded
    assert (error.code, error.reason, error.retry_after) == (
        "RESOURCE_EXHAUSTED",
        "RATE_LIMITED",
        1.5,
    )
    size = server_errors.PayloadTooLarge("too big", "PAYLOAD_TOO_LARGE")
    assert type(errors.from_rpc_error(_RpcError(size))) is errors.PayloadTooLarge


def _session() -> Session:
    return Session(target="t", json=False, retries=0, stdout=io.StringIO(), stderr=io.StringIO())


def test_the_cli_says_what_to_do_about_a_key_or_a_quota_in_one_line() -> None:
    session = _session()
    code = fail(session, AuthenticationError("API key unknown", reason="API_KEY_INVALID"))
    assert code == _exit.UNAUTHENTICATED == 8
    line = session.stderr.getvalue()  # type: ignore[attr-defined]
    assert line.count("\n") == 1 and "--api-key" in line and "FAAS_API_KEY" in line
    session = _session()
    assert fail(session, QuotaExceeded("too many open tasks", retry_after=2.25)) == 9
    line = session.stderr.getvalue()  # type: ignore[attr-defined]
    assert line.count("\n") == 1 and "try again in 2.2s" in line and "nothing was stored" in line


def test_every_gateway_command_takes_api_key() -> None:
    parser = build_parser()
    for argv in (["status", "t1"], ["workers"], ["execute", "f", "--args", "[1]"]):
        assert parser.parse_args([*argv, "--api-key", "faas_k.s"]).api_key == "faas_k.s"
        assert parser.parse_args(["--api-key", "faas_k.s", *argv]).api_key == "faas_k.s"
        assert parser.parse_args(argv).api_key is None  # the client then reads FAAS_API_KEY


def test_faas_tokens_does_not_issue_client_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["tokens", "issue", "x", "--role", "client"])
    assert exited.value.code == 2
    assert "invalid choice: 'client'" in capsys.readouterr().err


def test_faas_keys_issue_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "api_keys"
    assert main(["keys", "--keys-file", str(path), "issue", "alice", "--tenant", "team-a"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("faas_alice.") and key not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credential = TokenFile(path).verify(key, "client")
    assert credential is not None and credential.tenant == "team-a"
    assert main(["keys", "--keys-file", str(path), "--json", "list"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["tenant"]) for r in rows] == [("alice", "team-a")]
    assert main(["keys", "--keys-file", str(path), "revoke", "bob"]) == _exit.NOT_FOUND
    assert main(["keys", "--keys-file", str(path), "revoke", "alice"]) == 0
    assert TokenFile(path).verify(key, "client") is None
    assert main(["keys", "--keys-file", str(path), "issue", "x", "--tenant", "Bad!"]) == 2
    assert "tenant 'Bad!'" in capsys.readouterr().err


def test_faas_keys_list_and_revoke_leave_workers_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    TokenFile(path).issue("w1", "worker")
    assert main(["keys", "--keys-file", str(path), "list"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["keys", "--keys-file", str(path), "revoke", "w1"]) == _exit.NOT_FOUND
    assert [c.id for c in TokenFile(path).credentials()] == ["w1"]
