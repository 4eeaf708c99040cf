"""``faas certs init DIR [--host NAME ...]``: a development CA and the certificates TLS needs.

The files (services/common/certs.py makes them) and the flags that use them:

- ``ca.pem``: every client's ``--tls-ca`` / ``FAAS_TLS_CA`` (the SDK, the CLI, workers, the REST
  shim, a gateway dialling the dispatcher; ``grpcurl -cacert``, ``curl --cacert``), and a
  server's ``--tls-client-ca`` to require client certificates (mutual TLS);
- ``server.pem``, ``server-key.pem``: the gateway's, dispatcher's and REST shim's
  ``--tls-cert`` and ``--tls-key``, for 127.0.0.1, ::1, localhost and each ``--host``;
- ``client.pem``, ``client-key.pem``: a client's ``--tls-client-cert`` and ``--tls-client-key``.

Run again, it keeps what still fits (the CA always) and makes a server certificate again when
a ``--host`` is new. Keys are written 0600.
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from ..errors import FaaSError
from ._exit import ERROR, OK

if TYPE_CHECKING:
    from ._commands import Session

__all__ = ["add_certs", "certs"]


def add_certs(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    """The ``certs`` command and its ``init`` action."""
    parser = commands.add_parser(
        "certs",
        parents=[common],
        help="TLS for development: make a CA, a server and a client certificate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        parents=[common],
        help="make (or complete) the CA and certificates in DIR; keeps what fits",
    )
    init.add_argument("dir", metavar="DIR", help="the folder to write them in")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name or address clients dial, besides 127.0.0.1, ::1 and localhost (repeatable)",
    )


def certs(args: argparse.Namespace, session: Session) -> int:
    """Makes the development CA and certificates; says what it wrote and which flags use them."""
    try:
        module = importlib.import_module("services.common.certs")
    except ImportError as exc:
        raise FaaSError(
            f"`faas certs` needs the server extra (pip install 'mpcsfaas[server]'): {exc}"
        ) from None
    try:
        files, written = module.ensure_dev_certs(args.dir, args.host)
    except OSError as exc:
        session.note(f"cannot write the certificates in {args.dir}: {exc.strerror or exc}")
        return ERROR
    hosts = [*module.LOOPBACK_HOSTS, *args.host]
    if session.json:
        session.document(
            {
                "dir": str(files.folder),
                "written": [str(path) for path in written],
                "hosts": hosts,
                "ca": str(files.ca),
                "server": str(files.server),
                "server_key": str(files.server_key),
                "client": str(files.client),
                "client_key": str(files.client_key),
            }
        )
        return OK
    for path in written:
        session.out(f"wrote {path}")
    if not written:
        session.note(f"kept the CA and certificates in {files.folder} (they fit)")
    session.out(
        f"server certificate for {', '.join(hosts)}\n"
        "servers (gateway, dispatcher, REST shim):\n"
        f"  --tls-cert {files.server} --tls-key {files.server_key}\n"
        f"  (FAAS_TLS_CERT, FAAS_TLS_KEY); to require client certificates: --tls-client-ca "
        f"{files.ca}\n"
        "clients (faas, the SDK, workers, the REST shim, a gateway to its dispatcher):\n"
        f"  --tls-ca {files.ca}  (FAAS_TLS_CA; grpcurl -cacert, curl --cacert)\n"
        f"  mutual TLS: --tls-client-cert {files.client} --tls-client-key {files.client_key}\n"
        "  (FAAS_TLS_CLIENT_CERT, FAAS_TLS_CLIENT_KEY)"
    )
    return OK
