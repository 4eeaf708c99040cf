"""The development CA (services.common.certs) and the bind rule every service applies."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from faas import cli
from faas._transport import _tls_failure

from services.common.certs import ensure_dev_certs
from services.common.settings import ServiceSettings, SettingsError, load
from services.dispatcher.settings import DispatcherSettings
from services.gateway.rest.settings import RestSettings
from services.gateway.settings import GatewaySettings
from services.launcher import Platform, PlatformConfig
from services.launcher.settings import LauncherSettings
from services.worker.settings import WorkerSettings

S = TypeVar("S", bound=ServiceSettings)


def build(cls: type[S], **values: object) -> S:
    """Settings from flag values, with the one-line errors the entry points print."""
    return cls.from_sources({}, {name: (f"--{name}", value) for name, value in values.items()})


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _store(ca: Path) -> Store:
    return Store([_cert(ca)])


def test_dev_certs_name_loopback_and_given_hosts_and_the_ca_verifies_them(tmp_path: Path) -> None:
    certs, written = ensure_dev_certs(tmp_path / "tls", ["faas.example", "10.1.2.3"])
    assert set(written) == {
        certs.ca,
        certs.ca_key,
        certs.server,
        certs.server_key,
        certs.client,
        certs.client_key,
    }
    server = _cert(certs.server)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(DNSName)) == {"localhost", "faas.example"}
    assert set(names.get_values_for_type(IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.1.2.3"),
    }
    verifier = PolicyBuilder().store(_store(certs.ca))
    for name in (
        DNSName("localhost"),
        DNSName("faas.example"),
        IPAddress(ipaddress.ip_address("127.0.0.1")),
        IPAddress(ipaddress.ip_address("::1")),
    ):
        chain = verifier.build_server_verifier(name).verify(server, [])
        assert chain[-1] == _cert(certs.ca)
    with pytest.raises(VerificationError):
        verifier.build_server_verifier(DNSName("other.example")).verify(server, [])
    # The client certificate is for client authentication, signed by the same CA.
    verified = verifier.build_client_verifier().verify(_cert(certs.client), [])
    assert verified.chain[-1] == _cert(certs.ca)
    with pytest.raises(VerificationError):  # a server certificate is no client's
        verifier.build_client_verifier().verify(server, [])


def test_dev_cert_keys_are_0600_and_a_second_run_keeps_everything(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certs(tmp_path)
    for key in (certs.ca_key, certs.server_key, certs.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert b"PRIVATE KEY" in key.read_bytes()
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    _, written = ensure_dev_certs(tmp_path)
    assert written == []
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_new_host_reissues_only_the_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certs(tmp_path)
    ca = certs.ca.read_bytes()
    client = certs.client.read_bytes()
    _, written = ensure_dev_certs(tmp_path, ["faas.example"])
    assert written == [certs.server, certs.server_key]
    assert certs.ca.read_bytes() == ca and certs.client.read_bytes() == client
    verifier = PolicyBuilder().store(_store(certs.ca))
    verifier.build_server_verifier(DNSName("faas.example")).verify(_cert(certs.server), [])


def test_a_broken_server_key_is_made_again(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certs(tmp_path)
    certs.server_key.write_text("not a key")
    _, written = ensure_dev_certs(tmp_path)
    assert written == [certs.server, certs.server_key]
    assert stat.S_IMODE(certs.server_key.stat().st_mode) == 0o600


# --- the bind rule ---------------------------------------------------------------------------


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    certs, _ = ensure_dev_certs(tmp_path)
    return {"cert": certs.server, "key": certs.server_key, "ca": certs.ca}


def test_gateway_on_a_non_loopback_address_needs_tls_and_keys_or_insecure(
    tmp_path: Path, pem: dict[str, Path]
) -> None:
    keys = tmp_path / "keys"
    with pytest.raises(SettingsError, match=r"0\.0\.0\.0:50051 is not a loopback address.*TLS"):
        GatewaySettings.from_env({"FAAS_GATEWAY_ADDRESS": "0.0.0.0:50051"})
    tls = {"FAAS_TLS_CERT": str(pem["cert"]), "FAAS_TLS_KEY": str(pem["key"])}
    with pytest.raises(SettingsError, match=r"without API keys \(--api-keys-file\)"):
        GatewaySettings.from_env({"FAAS_GATEWAY_ADDRESS": "0.0.0.0:50051", **tls})
    with pytest.raises(
        SettingsError,
        match=r"without TLS \(--tls-cert, --tls-key\), anyone.*; give it, or --insecure",
    ):
        build(GatewaySettings, address="[::]:50051", api_keys_file=keys)
    build(
        GatewaySettings,
        address="0.0.0.0:50051",
        api_keys_file=keys,
        tls_cert=pem["cert"],
        tls_key=pem["key"],
    )
    GatewaySettings.from_env({"FAAS_GATEWAY_ADDRESS": "0.0.0.0:50051", "FAAS_INSECURE": "1"})
    for loopback in ("127.0.0.1:0", "127.0.0.2:0", "localhost:0", "[::1]:0"):
        build(GatewaySettings, address=loopback)


def test_dispatcher_on_a_non_loopback_address_needs_tls_and_tokens_or_insecure(
    tmp_path: Path, pem: dict[str, Path]
) -> None:
    with pytest.raises(SettingsError, match=r"TLS \(--tls-cert, --tls-key\) and enrolled workers"):
        build(DispatcherSettings, address="0.0.0.0:50052")
    with pytest.raises(SettingsError, match=r"without enrolled workers \(--tokens-file\)"):
        build(DispatcherSettings, address="0.0.0.0:50052", tls_cert=pem["cert"], tls_key=pem["key"])
    build(
        DispatcherSettings,
        address="0.0.0.0:50052",
        tls_cert=pem["cert"],
        tls_key=pem["key"],
        tokens_file=tmp_path / "tokens",
    )
    build(DispatcherSettings, address="0.0.0.0:50052", insecure=True)


def test_rest_shim_on_a_non_loopback_host_needs_https_or_insecure(pem: dict[str, Path]) -> None:
    with pytest.raises(SettingsError, match=r"--host 0\.0\.0\.0 is not a loopback.*HTTPS"):
        RestSettings.from_env({"FAAS_REST_HOST": "0.0.0.0"})
    build(RestSettings, host="0.0.0.0", tls_cert=pem["cert"], tls_key=pem["key"])
    build(RestSettings, host="0.0.0.0", insecure=True)


def test_tls_files_come_in_pairs_and_must_exist(tmp_path: Path, pem: dict[str, Path]) -> None:
    with pytest.raises(SettingsError, match="--tls-cert and --tls-key go together"):
        build(GatewaySettings, tls_cert=pem["cert"])
    with pytest.raises(SettingsError, match="--tls-client-ca needs --tls-cert"):
        build(DispatcherSettings, tls_client_ca=pem["ca"])
    with pytest.raises(SettingsError, match="--tls-client-cert needs --tls-ca"):
        build(WorkerSettings, tls_client_cert=pem["cert"], tls_client_key=pem["key"])
    with pytest.raises(SettingsError, match=r"FAAS_TLS_CA=.*no such file"):
        WorkerSettings.from_env({"FAAS_TLS_CA": str(tmp_path / "missing.pem")})


# --- make run --tls ---------------------------------------------------------------------------


def _launcher(argv: list[str]) -> LauncherSettings:
    return load(LauncherSettings, argv, {}, prog="faas up", description="")


def test_make_run_on_a_non_loopback_host_needs_tls_and_api_keys_or_insecure() -> None:
    with pytest.raises(SystemExit):
        _launcher(["--host", "0.0.0.0", "--tls"])
    with pytest.raises(SystemExit):
        _launcher(["--host", "0.0.0.0", "--api-keys"])
    settings = _launcher(["--host", "0.0.0.0", "--tls", "--api-keys"])
    config = settings.platform_config()
    assert config.tls and not config.insecure
    assert _launcher(["--host", "0.0.0.0", "--insecure"]).platform_config().insecure


def test_make_run_tls_gives_every_part_its_certificate_flags(tmp_path: Path) -> None:
    config = PlatformConfig(
        host="0.0.0.0",
        tls=True,
        gateway_port=15001,
        dispatcher_port=15002,
        rest_port=15003,
        data_dir=tmp_path / "data",
    )
    platform = Platform(config)  # nothing starts until start()
    folder = (tmp_path / "data" / "tls").absolute()
    assert platform.ca == folder / "ca.pem"
    server = ["--tls-cert", str(folder / "server.pem"), "--tls-key", str(folder / "server-key.pem")]
    ca = ["--tls-ca", str(folder / "ca.pem")]

    def has(argv: list[str], flags: list[str]) -> bool:
        return any(argv[i : i + len(flags)] == flags for i in range(len(argv)))

    assert has(platform.dispatcher.argv, server) and not has(platform.dispatcher.argv, ca)
    assert has(platform.gateway.argv, server) and has(platform.gateway.argv, ca)
    assert has(platform.rest.argv, server) and has(platform.rest.argv, ca)
    assert has(platform.new_worker().argv, ca)
    # It listens everywhere; its parts dial each other on loopback, which the certificate names.
    assert has(platform.gateway.argv, ["--address", "0.0.0.0:15001"])
    assert has(platform.gateway.argv, ["--dispatcher", "127.0.0.1:15002"])
    assert platform.gateway_target == "127.0.0.1:15001"
    assert platform.rest_url == "https://127.0.0.1:15003"
    assert "--insecure" not in platform.gateway.argv


def test_a_plain_platform_has_no_tls_flags(tmp_path: Path) -> None:
    config = PlatformConfig(gateway_port=1, dispatcher_port=2, rest_port=3, data_dir=tmp_path)
    platform = Platform(config)
    assert platform.ca is None and platform.rest_url == "http://127.0.0.1:3"
    for part in (platform.dispatcher, platform.gateway, platform.rest):
        assert not any(arg.startswith("--tls") for arg in part.argv)


def test_the_sdk_says_why_a_tls_connection_failed() -> None:
    """On the details gRPC gives (as seen against a real gateway)."""
    last = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
    failed = "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
    wrong_ca = f"{last}{failed}routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable: OK"
    assert "not signed by the CA given" in _tls_failure(wrong_ca, tls=True)
    plain_server = f"{last}{failed}routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid: OK"
    assert "does not speak TLS" in _tls_failure(plain_server, tls=True)
    closed = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:1: Socket closed"
    assert "is it on TLS?" in _tls_failure(closed, tls=False)
    assert _tls_failure(closed, tls=True) == ""
    assert _tls_failure(f"{last}Connection refused", tls=False) == ""


def test_faas_certs_init_writes_the_files_and_says_which_flags_take_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "certs"
    assert cli.main(["certs", "init", str(folder), "--host", "faas.example"]) == 0
    out = capsys.readouterr().out
    for name in ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem"):
        assert f"wrote {folder / name}" in out
    assert f"--tls-cert {folder / 'server.pem'} --tls-key {folder / 'server-key.pem'}" in out
    assert f"--tls-ca {folder / 'ca.pem'}" in out and "FAAS_TLS_CA" in out
    assert "127.0.0.1, ::1, localhost, faas.example" in out
    assert stat.S_IMODE((folder / "client-key.pem").stat().st_mode) == 0o600
    assert cli.main(["certs", "init", str(folder), "--host", "faas.example", "--json"]) == 0
    assert '"written":[]' in capsys.readouterr().out  # kept: they fit
    assert cli.main(["certs", "init", "/proc/no-such-folder"]) == 7
    assert "cannot write the certificates in /proc/no-such-folder" in capsys.readouterr().err
