"""`rulesctl token`: an HS256 JWT in Supabase's claim shape, signed with the secret `rulesctl
serve` reads, printed alone so `$(rulesctl token ...)` works; bad options exit 2 naming the
option. The real server accepts a minted token and refuses an expired one. The README shows
`rulesctl token` rather than a Python one-liner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from api_support import SECRET, add_staff, running_server

from engine.api.token import mint_token

RULESCTL = Path(sys.executable).parent / "rulesctl"
REPO = Path(__file__).resolve().parents[2]
STAFF = "3f2a6c1e-7b1d-4c3a-9e2f-0a1b2c3d4e5f"
MINE = "/functions/v1/assignments/my-assignments"


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("RULESCTL_JWT_SECRET", "SUPABASE_JWT_SECRET")}
    return subprocess.run([str(RULESCTL), "token", *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


def test_prints_only_a_supabase_shaped_token_signed_with_the_serve_secret():
    before = int(time.time())
    result = run("--role", "authenticated", "--sub", STAFF.upper(), "--ttl", "2h", RULESCTL_JWT_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.count(".") == 2          # one line: the token
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert set(claims) == {"role", "sub", "aud", "iss", "iat", "exp"}
    assert (claims["role"], claims["sub"], claims["aud"], claims["iss"]) == (
        "authenticated", STAFF, "authenticated", "rulesctl")
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 7200
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_the_secret_comes_from_supabase_jwt_secret_or_the_named_variable():
    supabase = run("--role", "service_role", SUPABASE_JWT_SECRET="supabase-secret-of-at-least-32-bytes!")
    claims = jwt.decode(supabase.stdout.strip(), "supabase-secret-of-at-least-32-bytes!", algorithms=["HS256"],
                        audience="authenticated")
    assert claims["role"] == "service_role" and "sub" not in claims
    assert claims["exp"] - claims["iat"] == 3600                          # --ttl defaults to 1h
    named = run("--sub", STAFF, "--secret-env", "MY_SECRET", MY_SECRET="my-own-secret-of-at-least-32-bytes!!",
                RULESCTL_JWT_SECRET=SECRET)
    assert jwt.decode(named.stdout.strip(), "my-own-secret-of-at-least-32-bytes!!", algorithms=["HS256"],
                      audience="authenticated")["sub"] == STAFF


@pytest.mark.parametrize(("args", "message"), [
    (("--role", "admin"), "--role must be one of anon, authenticated, service_role, not 'admin'"),
    (("--sub", "not-a-uuid"), "--sub must be a uuid (the staff id), not 'not-a-uuid'"),
    (("--ttl", "0"), "--ttl must be more than 0 and at most 366d, not '0'"),
    (("--ttl", "1 week"), "--ttl must be a number of seconds or like 90s, 30m, 1h, 7d; not '1 week'"),
    (("--ttl", "400d"), "--ttl must be more than 0 and at most 366d, not '400d'"),
    (("--secret-env", "UNSET_VARIABLE"), "no JWT secret: set $UNSET_VARIABLE"),
])
def test_bad_options_exit_2_naming_the_option_and_print_no_token(args, message):
    result = run(*args, RULESCTL_JWT_SECRET=SECRET)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"Error: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_secret_at_all_exits_2_naming_both_variables():
    result = run("--sub", STAFF)
    assert (result.returncode, result.stdout) == (2, "")
    assert "no JWT secret: set $RULESCTL_JWT_SECRET or $SUPABASE_JWT_SECRET" in result.stderr


@pytest.mark.db
def test_the_server_accepts_a_minted_token_and_refuses_an_expired_one(engine_url):
    fresh = run("--sub", STAFF, RULESCTL_JWT_SECRET=SECRET).stdout.strip()
    expired = mint_token("authenticated", STAFF, 60, SECRET, issued_at=time.time() - 3600)
    add_staff(engine_url, STAFF, "unit-it-support")
    with running_server(engine_url) as server:
        ok = server.client.get(MINE, headers={"Authorization": f"Bearer {fresh}"})
        assert ok.status_code == 200, ok.text
        assert (ok.json()["staff_id"], ok.json()["assignments"]) == (STAFF, [])   # the token's sub is the caller
        refused = server.client.get(MINE, headers={"Authorization": f"Bearer {expired}"})
        assert refused.status_code == 401
        assert refused.json()["message"] == "token expired"


def test_the_readme_mints_tokens_with_rulesctl_token_not_python():
    readme = (REPO / "README.md").read_text()
    assert "rulesctl token" in readme
    for one_liner in ("python -c", "python3 -c", "jwt.encode", "import jwt"):
        assert one_liner not in readme
