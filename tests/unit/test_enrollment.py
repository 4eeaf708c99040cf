"""The tokens file: tokens verify for their own id and role only, revocation takes effect at
the next check, and only hashes are stored."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.common.enrollment import EnrollmentError, TokenFile, bearer_token, parse_token


def test_a_token_proves_its_id_and_role_only_and_is_never_stored(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens")
    worker = tokens.issue("w1", "worker")
    gateway = tokens.issue("gw", "gateway")
    credential = tokens.verify(worker, "worker")
    assert credential is not None and credential.id == "w1"
    assert tokens.verify(worker, "gateway") is None
    assert tokens.verify(gateway, "worker") is None
    prefix, _, secret = worker.rpartition(".")
    assert tokens.verify(f"{prefix}.{secret[:-1]}x", "worker") is None
    assert tokens.verify(gateway.replace("faas_gw.", "faas_w1."), "worker") is None
    assert tokens.verify(None, "worker") is None and tokens.verify("junk", "worker") is None
    text = tokens.path.read_text()
    assert secret not in text and "w1" in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600


def test_revoking_or_reissuing_stops_the_old_token_for_a_reader_that_had_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens"
    admin, dispatcher = TokenFile(path), TokenFile(path)
    first = admin.issue("w1", "worker")
    assert dispatcher.verify(first, "worker") is not None
    second = admin.issue("w1", "worker")
    assert dispatcher.verify(first, "worker") is None
    assert dispatcher.verify(second, "worker") is not None
    assert admin.revoke("w1") and not admin.revoke("w1")
    assert dispatcher.verify(second, "worker") is None
    assert [c.id for c in dispatcher.credentials()] == []


def test_bad_ids_roles_and_files_are_refused_clearly(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens")
    for bad in ("", "-lead", "a b", "x" * 129):
        with pytest.raises(EnrollmentError, match="credential id"):
            tokens.issue(bad, "worker")
    with pytest.raises(EnrollmentError, match="role"):
        tokens.issue("w", "admin")  # type: ignore[arg-type]
    tokens.path.write_text("{not json\n")
    with pytest.raises(EnrollmentError, match="not a credential"):
        tokens.credentials()


def test_tokens_and_bearer_metadata_parse() -> None:
    assert parse_token("faas_w-1.x.y" + "s" * 32) == ("w-1.x", "y" + "s" * 32)
    assert parse_token("faas_w1.short") is None and parse_token("w1." + "s" * 40) is None
    metadata = (("user-agent", "grpc"), ("authorization", "Bearer faas_a.b"))
    assert bearer_token(metadata) == "faas_a.b"
    assert bearer_token((("authorization", "Basic abc"),)) is None and bearer_token(None) is None


def test_a_worker_is_the_id_its_token_names_unless_told_another() -> None:
    from services.common.settings import load
    from services.worker.settings import WorkerSettings

    token = "faas_gpu-box-1." + "s" * 43
    args = ["2", "127.0.0.1:50052"]
    env = {"FAAS_WORKER_TOKEN": token}
    assert load(WorkerSettings, args, env, prog="w", description="").worker_id == "gpu-box-1"
    named = load(WorkerSettings, [*args, "--worker-id", "mine"], env, prog="w", description="")
    assert named.worker_id == "mine"
