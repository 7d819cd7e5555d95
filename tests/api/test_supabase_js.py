"""The official JavaScript client (supabase-js, on the machine's Node) against `rulesctl serve`:
`supabase.functions.invoke(name, {body})` by deployed function name, a user signed in through
its `accessToken` option, a refusal as FunctionsHttpError with the API's JSON body.

supabase-js is installed from the npm registry into a temporary folder once per module (a few
seconds; npm's cache makes later runs faster). The version range is the last one whose
`engines` accepts Node 20, Debian's Node here; on Node 20 it also needs `ws`.
supabase_js_calls.mjs is the client program.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from api_support import add_staff, installed, reset_runtime_data, server, supabase_token  # noqa: F401 -- module fixtures
from engine_calls import uid

pytestmark = pytest.mark.db

SUPABASE_JS = ("@supabase/supabase-js@>=2.100 <2.110",      # 2.110 and later need Node 22
               "ws@8")                                        # Node 20's WebSocket for its realtime part
CLIENT = Path(__file__).with_name("supabase_js_calls.mjs")
DESK_A, IT_SUPERVISOR = uid(3301), uid(3309)
UNIT = "unit-it-support"


@pytest.fixture(scope="module")
def supabase_js(tmp_path_factory) -> Path:
    """A folder holding supabase-js and the client program."""
    folder = tmp_path_factory.mktemp("supabase-js")
    npm = shutil.which("npm")
    assert npm, "npm is needed for the supabase-js tests (Debian: apt-get install npm)"
    run = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(folder), *SUPABASE_JS],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"npm install {' '.join(SUPABASE_JS)} failed:\n{run.stdout}\n{run.stderr}"
    shutil.copy(CLIENT, folder / CLIENT.name)
    return folder


def invoke_all(folder: Path, server, calls: list[dict]) -> list[dict]:
    request = {"url": server.base_url, "anonKey": supabase_token("anon"), "calls": calls}
    run = subprocess.run(["node", CLIENT.name], cwd=folder, input=json.dumps(request), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_supabase_js_invokes_the_functions_by_name(installed, server, supabase_js):
    reset_runtime_data(installed)
    add_staff(installed, DESK_A, UNIT, wip_limit=1)
    add_staff(installed, IT_SUPERVISOR, UNIT, role="supervisor", wip_limit=0)
    desk, supervisor = supabase_token("authenticated", DESK_A), supabase_token("authenticated", IT_SUPERVISOR)
    service = supabase_token("service_role")
    ticket = {"work_item_type": "ticket", "priority": "normal"}
    results = invoke_all(supabase_js, server, [
        {"name": "assignments-auto-assign", "jwt": service, "body": {"work_item_id": "JS-1", **ticket}},
        {"name": "assignments-auto-assign", "jwt": desk, "body": {"work_item_id": "JS-2", **ticket}},
        {"name": "assignments-queue", "jwt": supervisor, "body": {"unit_id": UNIT}},
        {"name": "capacity-check?unit_id=" + UNIT, "jwt": supervisor, "method": "GET"},
        {"name": "assignments-my-assignments", "jwt": desk},
        {"name": "assignments-auto-assign", "body": {"work_item_id": "JS-3", **ticket}},        # the anon key alone
        {"name": "staff-profile", "jwt": desk, "body": {"id": DESK_A, "unit_id": UNIT, "full_name": "me"}},
        {"name": "health-assignment-engine", "method": "GET"},
    ])
    assigned, queued, queue, capacity, mine, anon, profile, health = results
    assert assigned["data"]["status"] == "assigned" and assigned["data"]["assignee_id"] == DESK_A
    assert queued["data"]["status"] == "queued" and queued["data"]["position"] == 1
    assert [item["work_item_id"] for item in queue["data"]["items"]] == ["JS-2"]
    assert (capacity["data"]["assigned"], capacity["data"]["queue_depth"]) == (1, 1)
    assert [a["work_item_id"] for a in mine["data"]["assignments"]] == ["JS-1"]
    assert anon["error"]["name"] == "FunctionsHttpError" and anon["error"]["status"] == 403
    assert anon["error"]["body"]["error"] == "forbidden"
    assert (profile["error"]["status"], profile["error"]["body"]["error"]) == (403, "forbidden")
    # no pg_cron in the test database: degraded, and to the anon key the bare status only
    assert (health["error"]["status"], health["error"]["body"]) == (503, {"status": "degraded"})
