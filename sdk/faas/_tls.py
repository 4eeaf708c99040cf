"""TLS to the gateway: channel credentials from a CA bundle and an optional client certificate.

``tls_ca`` (default ``$FAAS_TLS_CA``) is the CA that verifies the gateway's certificate: given,
the client connects with TLS (``faas certs init`` makes a development CA, ``make run --tls``
uses one). ``tls_cert`` and ``tls_key`` (default ``$FAAS_TLS_CLIENT_CERT`` and
``$FAAS_TLS_CLIENT_KEY``) are the client's certificate and key, for a gateway that requires
client certificates (mutual TLS). An empty string turns a variable's default off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc

__all__ = ["TLS_CA_ENV", "TLS_CERT_ENV", "TLS_KEY_ENV", "PathArg", "channel_credentials"]

TLS_CA_ENV = "FAAS_TLS_CA"
TLS_CERT_ENV = "FAAS_TLS_CLIENT_CERT"
TLS_KEY_ENV = "FAAS_TLS_CLIENT_KEY"

PathArg = str | os.PathLike[str]


def _resolve(value: PathArg | None, variable: str, environ: Mapping[str, str]) -> Path | None:
    text = os.fspath(value) if value is not None else environ.get(variable, "")
    return Path(text.strip()) if text.strip() else None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror}") from None


def channel_credentials(
    tls_ca: PathArg | None,
    tls_cert: PathArg | None = None,
    tls_key: PathArg | None = None,
    environ: Mapping[str, str] = os.environ,
) -> grpc.ChannelCredentials | None:
    """The credentials of a TLS channel to the gateway; None (plaintext) without a CA.

    A file that cannot be read, or a certificate without its key, is a ValueError now rather
    than a failed handshake at the first call.
    """
    ca = _resolve(tls_ca, TLS_CA_ENV, environ)
    cert = _resolve(tls_cert, TLS_CERT_ENV, environ)
    key = _resolve(tls_key, TLS_KEY_ENV, environ)
    if (cert is None) != (key is None):
        raise ValueError("a TLS client certificate and its key go together: give both or neither")
    if ca is None:
        if cert is not None:
            raise ValueError("a TLS client certificate needs tls_ca (the CA of the gateway)")
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "TLS CA"),
        private_key=_read(key, "TLS client key") if key is not None else None,
        certificate_chain=_read(cert, "TLS client certificate") if cert is not None else None,
    )
