"""The REST shim: a thin FastAPI front for the Gateway gRPC service.

Each endpoint maps to one ``faas.v1.GatewayService`` call. The shim only translates: it decodes
base64 payloads into bytes, encodes result bytes back into base64, and maps gRPC status codes to
HTTP status codes. It never unpickles anything.
"""

from services.gateway.rest.app import create_app
from services.gateway.rest.settings import RestSettings

__all__ = ["RestSettings", "create_app"]
