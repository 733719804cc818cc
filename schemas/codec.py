"""How every record of this service is spelled on the wire: one orjson document."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """One JSON document: models as the contract spells them, in field order."""
    if isinstance(obj, BaseModel):
        # pydantic's own serializer is faster than dumping a dict through orjson.
        return obj.__pydantic_serializer__.to_json(obj)
    return orjson.dumps(obj, default=_default)
