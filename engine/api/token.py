"""Minting access tokens for tests and scripts (`rulesctl token`). Input: a role, a subject,
a lifetime and the JWT secret `rulesctl serve` checks tokens with. Output: an HS256 JWT in
Supabase's claim shape (`role`, `sub`, `aud`, `iss`, `iat`, `exp`), which auth.py accepts as
it accepts a token from Supabase Auth.

Bad input raises ValueError naming the option; the CLI turns it into a usage error.
"""

from __future__ import annotations

import os
import re
import time
import uuid

import jwt

from engine.api.auth import ALGORITHMS, ROLES

ISSUER = "rulesctl"
AUDIENCE = "authenticated"                   # what Supabase Auth puts in every user's token
SECRET_VARIABLES = ("RULESCTL_JWT_SECRET", "SUPABASE_JWT_SECRET")   # as `rulesctl serve` reads them
MAX_TTL_SECONDS = 366 * 24 * 3600
_TTL = re.compile(r"(\d+)\s*([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def parse_subject(sub: str) -> str:
    """A uuid (the staff id current_user_id() reads), in its canonical lower-case form."""
    try:
        return str(uuid.UUID(sub))
    except ValueError:
        raise ValueError(f"--sub must be a uuid (the staff id), not {sub!r}") from None


def parse_ttl(ttl: str) -> int:
    """'90s', '30m', '1h', '7d' or plain seconds -> seconds (more than 0, at most 366 days)."""
    match = _TTL.fullmatch(ttl.strip().lower())
    if not match:
        raise ValueError(f"--ttl must be a number of seconds or like 90s, 30m, 1h, 7d; not {ttl!r}")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"--ttl must be more than 0 and at most 366d, not {ttl!r}")
    return seconds


def find_secret(variable: str | None = None) -> str:
    """The secret from `variable`, or from the first of SECRET_VARIABLES that is set."""
    names = (variable,) if variable else SECRET_VARIABLES
    secret = next((os.environ[name] for name in names if os.environ.get(name)), "")
    if not secret:
        raise ValueError(f"no JWT secret: set ${' or $'.join(names)} (the secret `rulesctl serve` checks tokens with)")
    return secret


def mint_token(role: str, sub: str | None, ttl_seconds: int, secret: str, *, issued_at: float | None = None) -> str:
    """The signed token. `issued_at` (epoch seconds, default now) lets a test mint one already expired."""
    if not secret:
        raise ValueError("no JWT secret")
    now = int(time.time() if issued_at is None else issued_at)
    claims: dict[str, object] = {"role": parse_role(role), "aud": AUDIENCE, "iss": ISSUER, "iat": now,
                                 "exp": now + ttl_seconds}
    if sub is not None:
        claims["sub"] = parse_subject(sub)
    return jwt.encode(claims, secret, algorithm=ALGORITHMS[0])
