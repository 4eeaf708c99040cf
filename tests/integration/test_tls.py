"""TLS on every hop (``make run --tls``): the SDK, REST, workers, grpcurl; plaintext refused;
mutual TLS; and standalone services refusing an open non-loopback address."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from faas import FaaSClient
from faas.errors import ServiceUnavailable
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import tls
from services.common.certs import ensure_dev_certs
from services.launcher import Platform, PlatformConfig
from services.launcher.redis_server import free_port
from tests.integration.conftest import PlatformFactory
from tests.integration.test_grpcurl import GRPCURL
from tests.integration.test_launcher import BANNER_END, Launcher, _argv
from tests.support import RestClient, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def tls_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A push-mode platform with TLS on every hop and enrolled workers (what make run --tls is)."""
    root = tmp_path_factory.mktemp("tls")
    platform = Platform(
        PlatformConfig(
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            tls=True,
        )
    )
    platform.start()
    yield platform
    platform.stop()


def _ca(platform: Platform) -> Path:
    assert platform.ca is not None
    return platform.ca


def test_sdk_round_trip_over_tls_runs_on_a_worker_connected_with_tls(
    tls_platform: Platform,
) -> None:
    assert tls_platform.rest_url.startswith("https://")
    worker_args = tls_platform.workers[0].argv
    assert worker_args[worker_args.index("--tls-ca") + 1] == str(_ca(tls_platform))
    with FaaSClient(tls_platform.gateway_target, tls_ca=_ca(tls_platform)) as client:
        function_id = client.register(_square)
        assert [client.submit(function_id, n).result(timeout=60) for n in range(5)] == [
            0,
            1,
            4,
            9,
            16,
        ]
        workers = client.workers().workers
        assert [w.worker_id for w in workers] == [tls_platform.workers[0].name]


def test_local_mode_over_tls(make_platform: PlatformFactory) -> None:
    platform = make_platform(mode="local", tls=True, worker_processes=1)
    with FaaSClient(platform.gateway_target, tls_ca=_ca(platform)) as client:
        function_id = client.register(_square)
        assert client.submit(function_id, 11).result(timeout=60) == 121


def test_sdk_takes_the_ca_from_the_environment(tls_platform: Platform) -> None:
    environ = {"FAAS_TARGET": tls_platform.gateway_target, "FAAS_TLS_CA": str(_ca(tls_platform))}
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update(environ)
    try:
        with FaaSClient.from_env() as client:
            function_id = client.register(_square)
            assert client.submit(function_id, 12).result(timeout=60) == 144
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_rest_round_trip_over_https_through_the_shim(tls_platform: Platform) -> None:
    rest = RestClient(tls_platform.rest_url)
    rest.http.close()
    rest.http = httpx.Client(
        base_url=tls_platform.rest_url,
        timeout=30.0,
        verify=ssl.create_default_context(cafile=_ca(tls_platform)),
    )
    try:
        function_id = rest.register(_square)
        task_id = rest.execute(function_id, 9)
        outcome = rest.result(task_id, wait=30)
        assert outcome["status"] == "COMPLETED", outcome
    finally:
        rest.close()
    # Plain HTTP to the HTTPS port gets no answer of the API.
    plain = tls_platform.rest_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/healthz", timeout=5.0).raise_for_status()


def test_a_plaintext_client_cannot_talk_to_the_tls_gateway(
    tls_platform: Platform, tmp_path: Path
) -> None:
    with (
        FaaSClient(tls_platform.gateway_target, tls_ca="", retries=1) as client,
        pytest.raises(ServiceUnavailable, match=r"socket closed \(is it on TLS\? give its CA"),
    ):
        client.register(_square)
    other, _ = ensure_dev_certs(tmp_path / "other")  # a CA that did not sign the gateway's
    with (
        FaaSClient(tls_platform.gateway_target, tls_ca=other.ca, retries=1) as client,
        pytest.raises(ServiceUnavailable, match="certificate is not signed by the CA given"),
    ):
        client.register(_square)
    # A TLS client that does not trust the CA is refused too.
    with grpc.secure_channel(
        tls_platform.gateway_target, grpc.ssl_channel_credentials(root_certificates=None)
    ) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_worker_cannot_connect_to_the_tls_dispatcher(
    tls_platform: Platform, tmp_path: Path
) -> None:
    # Enrolled, so that the only thing it lacks is TLS.
    assert tls_platform.tokens is not None
    token = tls_platform.tokens.issue("plain-worker", "worker")
    log_path = tmp_path / "plain-worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.worker", "1", tls_platform.dispatcher_target],
            env={**os.environ, "FAAS_WORKER_TOKEN": token, "FAAS_TLS_CA": ""},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_until(
            lambda: b"dispatcher stream: UNAVAILABLE" in log_path.read_bytes(),
            60,
            "the plaintext worker's failed connection",
        )
        with FaaSClient(tls_platform.gateway_target, tls_ca=_ca(tls_platform)) as client:
            ids = [w.worker_id for w in client.workers().workers]
        assert "plain-worker" not in ids
        assert worker.poll() is None  # it keeps trying, and keeps failing
    finally:
        worker.terminate()
        worker.wait(30)
        tls_platform.tokens.revoke("plain-worker")


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-max-time", "30", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_grpcurl_with_the_ca_lists_the_services_and_checks_health(tls_platform: Platform) -> None:
    ca = str(_ca(tls_platform))
    listed = _grpcurl("-cacert", ca, tls_platform.gateway_target, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"faas.v1.GatewayService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    listed = _grpcurl("-cacert", ca, tls_platform.dispatcher_target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "faas.v1.DispatcherService" in listed.stdout.split()
    health = _grpcurl("-cacert", ca, tls_platform.gateway_target, "grpc.health.v1.Health/Check")
    assert health.returncode == 0 and '"SERVING"' in health.stdout, health.stderr
    plaintext = _grpcurl("-plaintext", tls_platform.gateway_target, "list")
    assert plaintext.returncode != 0
    untrusted = _grpcurl(tls_platform.gateway_target, "list")  # the system's CAs only
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower()


def test_mutual_tls_refuses_a_client_without_a_certificate(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    # Every part is told to require client certificates (and to present the launcher's one).
    certs = tmp_path / "data0" / "tls"
    env = {
        "FAAS_TLS_CLIENT_CA": str(certs / "ca.pem"),
        "FAAS_TLS_CLIENT_CERT": str(certs / "client.pem"),
        "FAAS_TLS_CLIENT_KEY": str(certs / "client-key.pem"),
    }
    platform = make_platform(tls=True, worker_processes=1, extra_env=env)
    ca = _ca(platform)
    # Without a client certificate: the handshake fails, nothing is answered.
    with (
        FaaSClient(platform.gateway_target, tls_ca=ca, tls_cert="", tls_key="", retries=1) as c,
        pytest.raises(ServiceUnavailable),
    ):
        c.register(_square)
    with grpc.secure_channel(
        platform.dispatcher_target, tls.channel_credentials(ca)
    ) as channel:  # the dispatcher too
        with pytest.raises(grpc.RpcError) as failed:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    # With one, everything runs: SDK, worker and gateway presented theirs.
    with FaaSClient(
        platform.gateway_target,
        tls_ca=ca,
        tls_cert=certs / "client.pem",
        tls_key=certs / "client-key.pem",
    ) as client:
        function_id = client.register(_square)
        assert client.submit(function_id, 7).result(timeout=60) == 49


# --- standalone services on a non-loopback address ------------------------------------------

_SERVICES = {
    "gateway": (["-m", "services.gateway", "--address", "0.0.0.0:0"], "gateway listening on"),
    "dispatcher": (
        ["-m", "services.dispatcher", "--address", "0.0.0.0:0"],
        "listening on 0.0.0.0:",
    ),
    "rest": (
        ["-m", "services.gateway.rest", "--host", "0.0.0.0", "--port", "0"],
        "Uvicorn running on",
    ),
}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAAS_")}
    # Nothing listens there: the services start without reaching it.
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    return env


@pytest.mark.parametrize("service", sorted(_SERVICES))
def test_a_standalone_service_refuses_an_open_non_loopback_address(service: str) -> None:
    args, _ = _SERVICES[service]
    done = subprocess.run(
        [sys.executable, *args],
        env=_clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "is not a loopback address" in lines[0] and "--insecure" in lines[0], lines[0]
    assert "listening" not in done.stdout + done.stderr


@pytest.mark.parametrize("service", sorted(_SERVICES))
def test_a_standalone_service_starts_on_a_non_loopback_address_with_insecure(
    service: str, tmp_path: Path
) -> None:
    args, ready = _SERVICES[service]
    log_path = tmp_path / f"{service}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *args, "--insecure"],
            env=_clean_env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while ready not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.05)  # polling its log for the listening line
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- make run --tls --------------------------------------------------------------------------


def test_make_run_tls_prints_how_to_connect_and_reuses_its_certificates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ca = data / "tls" / "ca.pem"
    made: bytes = b""
    for run in range(2):
        ports = {name: free_port() for name in ("gateway", "dispatcher", "rest")}
        launcher = Launcher(_argv(data, ports, "--tls"))
        try:
            launcher.output.wait_for(BANNER_END, 120)
            banner = launcher.output.text()
            assert f"https://127.0.0.1:{ports['rest']}" in banner, banner
            assert f"FAAS_TLS_CA={ca}" in banner and "gRPC over TLS" in banner, banner
            if run == 0:
                made = ca.read_bytes()
            assert ca.read_bytes() == made  # the second start trusts the same CA
            with FaaSClient(f"127.0.0.1:{ports['gateway']}", tls_ca=ca) as client:
                function_id = client.register(_square)
                assert client.submit(function_id, 3).result(timeout=60) == 9
            assert launcher.stop() == 0
        finally:
            launcher.cleanup()


def test_the_cli_talks_to_a_tls_gateway_with_tls_ca(tls_platform: Platform) -> None:
    def faas(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAAS_")}
        return subprocess.run(
            [sys.executable, "-m", "faas", "--target", tls_platform.gateway_target, *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = faas("--tls-ca", str(_ca(tls_platform)), "workers", "--json")
    assert listed.returncode == 0, listed.stderr
    assert tls_platform.workers[0].name in listed.stdout
    plain = faas("--retries", "0", "workers")
    assert plain.returncode == 4, plain.stderr  # UNAVAILABLE: no answer in plaintext
