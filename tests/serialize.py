"""The course's payload helpers: dill, then base64, as its testing report's suite uses them."""

import codecs
from typing import Any

import dill


def serialize(obj: Any) -> str:
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(text: str) -> Any:
    return dill.loads(codecs.decode(text.encode(), "base64"))
