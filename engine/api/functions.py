"""Supabase function names. Input: the endpoints as routes.py declares them, under the guide's
curl paths (`/assignments/auto-assign`). Output: the same endpoints also under the name each is
deployed as on Supabase (`/assignments-auto-assign`), which is where the Supabase client
libraries send `functions.invoke(name)`: one implementation behind both paths.

A function's name is its curl path with `/` turned into `-` (the guide deploys
`assignments/auto-assign` as `assignments-auto-assign`, `capacity/check` as `capacity-check`);
a route whose deployed name differs declares it with `openapi_extra={FUNCTION_NAME: "name"}`.
The OpenAPI document keeps one operation per endpoint, carrying the name as `x-supabase-function`.

Supabase clients invoke with POST by default, so a GET endpoint also answers POST at its
function name: the JSON object in the body (and any query string) becomes its query
parameters, and the GET endpoint runs on them — validated exactly as a GET would be.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from engine.api.body import read_json
from engine.api.errors import invalid

FUNCTION_NAME = "x-supabase-function"


def function_name(path: str) -> str:
    """The deployed name of the endpoint at this curl path: "/capacity/check" -> "capacity-check"."""
    return path.strip("/").replace("/", "-")


class FunctionsRouter(APIRouter):
    """An APIRouter whose every route is also served under its Supabase function name."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        extra = dict(options.pop("openapi_extra", None) or {})
        name = extra.setdefault(FUNCTION_NAME, function_name(path))
        super().add_api_route(path, endpoint, openapi_extra=extra, **options)
        if f"/{name}" == path:
            return
        alias = {**options, "include_in_schema": False, "name": f"{options.get('name') or endpoint.__name__}:{name}"}
        super().add_api_route(f"/{name}", endpoint, openapi_extra=extra, **alias)
        target = self.routes[-1]
        assert isinstance(target, APIRoute)
        if target.methods == {"GET"}:
            self.routes.append(Route(target.path, PostAsGet(target), methods=["POST"], include_in_schema=False))
            self._mark_routes_changed()


class PostAsGet:
    """ASGI app: answer a POST with the GET route, the body's JSON object as query parameters."""

    def __init__(self, target: APIRoute) -> None:
        self.target = target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(Request(scope, receive))
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = {key for key, _ in params}
        if body is not None:
            if not isinstance(body, dict):
                raise invalid("request", "the body must be a JSON object of the function's parameters")
            for key, value in body.items():
                if key in given:
                    raise invalid(key, f"{key}: given both in the query string and in the body")
                if value is None:
                    continue
                if isinstance(value, (dict, list)):
                    raise invalid(key, f"{key}: must be a string, number or boolean")
                params.append((key, json.dumps(value) if isinstance(value, bool) else str(value)))
        query = urlencode(params).encode("latin-1")
        get = {**scope, "method": "GET", "query_string": query, "path_params": {}}
        await self.target.handle(get, _body_read(receive), send)


def _body_read(receive: Receive) -> Receive:
    """The request's receive once its body has been read: an empty body first, then what the
    server sends next (the client's disconnect, which a stream waits for)."""
    sent = False

    async def receive_after_body() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()
    return receive_after_body
