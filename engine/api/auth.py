"""Who is calling. Input: the request's ``Authorization: Bearer <jwt>`` and ``apikey`` headers
and the JWT secret. Output: a Caller (database role + the claims to hand to PostgreSQL), or
AuthError (401).

As on Supabase, the Authorization token is the caller; a request with only an ``apikey``
(the project's anon or service key, itself a JWT) calls as that key.

Tokens are checked the way Supabase/PostgREST check them: HS256 signed with the project's
JWT secret, not expired, a ``role`` claim naming one of Supabase's API roles. ``sub`` (the
staff id that ``current_user_id()`` reads) is optional — Supabase's anon and service_role
keys carry none — but when present it must be a uuid. What a role may then do is decided by
PostgreSQL (grants and row level security), never here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jwt

# Supabase's API roles; the only roles a request may switch to.
ROLES = ("anon", "authenticated", "service_role")
ALGORITHMS = ["HS256"]
LEEWAY_SECONDS = 5


class AuthError(Exception):
    """The request carries no usable credentials (HTTP 401)."""


@dataclass(frozen=True)
class Caller:
    role: str
    claims: dict[str, Any]

    @property
    def subject(self) -> str | None:
        return self.claims.get("sub")


class NoCredentials(AuthError):
    """Neither an Authorization nor an apikey header."""


def caller_from_headers(authorization: str | None, apikey: str | None, secret: str) -> Caller:
    if authorization:
        return caller_from_header(authorization, secret)
    if apikey and apikey.strip():
        try:
            return caller_from_token(apikey.strip(), secret)
        except AuthError as exc:
            raise AuthError(f"apikey: {exc}") from None
    raise NoCredentials("missing bearer token: send Authorization: Bearer <JWT> (or a Supabase apikey header)")


def caller_from_header(authorization: str | None, secret: str) -> Caller:
    if not authorization:
        raise NoCredentials("missing bearer token: send Authorization: Bearer <JWT>")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("malformed Authorization header: expected 'Bearer <JWT>'")
    return caller_from_token(token, secret)


def caller_from_token(token: str, secret: str) -> Caller:
    try:
        claims = jwt.decode(token, secret, algorithms=ALGORITHMS, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "role"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"malformed token: {exc}") from None
    role = claims.get("role")
    if role not in ROLES:
        raise AuthError(f"token role {role!r} is not one of {', '.join(ROLES)}")
    subject = claims.get("sub")
    if subject is not None and not _is_uuid(subject):
        raise AuthError("token subject (sub) must be a uuid: the staff id")
    return Caller(role=role, claims=claims)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None
