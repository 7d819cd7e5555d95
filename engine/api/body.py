"""Request bodies. Input: a request. Output: its JSON value exactly as sent (None for an empty
body), or a 400 (not JSON) / 413 (over MAX_BODY_BYTES) ApiError. Only "is it JSON at all" is
checked here: what the value must hold is the SQL API's to say.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from starlette.requests import Request

from engine.api.errors import ApiError, invalid

MAX_BODY_BYTES = 1 << 20


async def read_json(request: Request) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise invalid("request", "the body is not valid JSON") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
