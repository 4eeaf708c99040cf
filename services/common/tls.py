"""TLS on the gRPC hops: server and channel credentials from PEM files, and the bind rule.

A server listens with TLS when it is given a certificate chain and its key (``--tls-cert``,
``--tls-key``; ``FAAS_TLS_CERT``, ``FAAS_TLS_KEY``); with a client CA as well
(``--tls-client-ca``, ``FAAS_TLS_CLIENT_CA``) it requires and verifies a client certificate
signed by it (mutual TLS). A client connects with TLS when it is given the CA bundle that
verifies the server (``--tls-ca``, ``FAAS_TLS_CA``), and presents a certificate of its own when
given one (``--tls-client-cert``, ``--tls-client-key``). Certificates name the hosts clients
dial (``faas certs init`` makes them for 127.0.0.1, ::1 and localhost), so no target-name
override is needed.

``check_exposed`` is the one rule every service's settings apply: a non-loopback address needs
what protects it (TLS, keys or tokens) unless ``--insecure`` says to listen anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import grpc
from pydantic import AfterValidator

from .grpc_server import is_loopback

__all__ = [
    "PemFile",
    "channel_credentials",
    "check_client_pair",
    "check_exposed",
    "check_server_pair",
    "describe",
    "open_channel",
    "server_credentials",
    "sync_channel",
]


def _readable(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return path


PemFile = Annotated[Path, AfterValidator(_readable)]
"""A readable PEM file (a certificate, a key or a CA bundle)."""


def server_credentials(
    cert: Path | None, key: Path | None, client_ca: Path | None = None
) -> grpc.ServerCredentials | None:
    """A server's credentials; with ``client_ca``, clients must present a certificate it signed.

    None (plaintext) when there is no certificate.
    """
    if cert is None or key is None:
        return None
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca is not None else None,
        require_client_auth=client_ca is not None,
    )


def describe(cert: Path | None, client_ca: Path | None) -> str:
    """What protects a server's port, for its start-up line."""
    if cert is None:
        return "plaintext"
    return "TLS, client certificates required" if client_ca is not None else "TLS"


def channel_credentials(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials | None:
    """A client's credentials: servers verified by ``ca``, with a client certificate if given.

    None (plaintext) when there is no ``ca``.
    """
    if ca is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key is not None else None,
        certificate_chain=cert.read_bytes() if cert is not None else None,
    )


def open_channel(
    target: str,
    options: Sequence[tuple[str, Any]],
    credentials: grpc.ChannelCredentials | None,
) -> grpc.aio.Channel:
    """An asyncio channel to ``target``, with TLS when there are credentials."""
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, credentials, options=list(options))


def sync_channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    """A blocking channel (health checks), with TLS when there are credentials."""
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)


def check_server_pair(cert: Path | None, key: Path | None, client_ca: Path | None) -> None:
    """Raises ValueError unless the certificate and key come together (the client CA with them)."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    if client_ca is not None and cert is None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (TLS to verify clients)")


def check_client_pair(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Raises ValueError unless a client certificate and key come together, and with a CA."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-client-cert and --tls-client-key go together: give both or neither")
    if cert is not None and ca is None:
        raise ValueError("--tls-client-cert needs --tls-ca (the CA that verifies the server)")


def check_exposed(host: str, where: str, needs: Mapping[str, bool], insecure: bool) -> None:
    """Raises ValueError when ``host`` is not loopback and one of ``needs`` is unmet.

    ``needs`` maps what protects the service (``"TLS (--tls-cert/--tls-key)"``) to whether it is
    given; ``where`` names the setting (``"--address 0.0.0.0:50051"``). ``insecure`` waives it.
    """
    if insecure or is_loopback(host):
        return
    missing = [name for name, given in needs.items() if not given]
    if missing:
        raise ValueError(
            f"{where} is not a loopback address: without {' and '.join(missing)}, anyone "
            "who reaches it could run code here; give "
            f"{'them' if len(missing) > 1 else 'it'}, or --insecure (FAAS_INSECURE=1) to "
            "listen anyway on a network you trust"
        )
