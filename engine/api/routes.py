"""The endpoints of the deployment guide. Each is a thin, typed wrapper over one SQL API
function: read the caller and the body, call the function as the caller, hand back its jsonb
with the status the guide gives it. No business rule lives here: validation, permissions and
visibility are the database's (SQL API checks, grants, row level security).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ValidationError

from engine.api import models
from engine.api.auth import AuthError, Caller, NoCredentials, caller_from_headers
from engine.api.body import MAX_BODY_BYTES, read_json  # noqa: F401 -- MAX_BODY_BYTES: re-exported
from engine.api.calls import Database
from engine.api.errors import ApiError, invalid, unauthorized
from engine.api.events import EventHub
from engine.api.functions import FunctionsRouter
from engine.compiler import catalog

if TYPE_CHECKING:   # psycopg >= 3.3's name; only in annotations of helpers, which FastAPI never reads
    from psycopg.abc import Params, QueryNoTemplate

PREFIX = "/functions/v1"
bearer = HTTPBearer(auto_error=False, description="A Supabase-style JWT (HS256): claims role, sub, exp.")
router = FunctionsRouter(prefix=PREFIX)   # each endpoint also under its Supabase function name


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "invalid input; `field` names the request field at fault",
            413: "the body is larger than 1 MiB",
            401: "missing, malformed, expired or badly signed bearer token",
            403: "the caller's role may not do this",
            404: "unknown assignment, unit or staff (`field` names which)",
            409: "conflicting change: the `version` you read no longer matches; read again",
            503: "the database is busy or unavailable; retry"}
    return {status: {"model": models.Error, "description": text[status]} for status in statuses}


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


apikey = APIKeyHeader(name="apikey", auto_error=False,
                      description="Supabase's project key (a JWT); the caller when no Authorization is sent.")


async def authenticate(request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                       _apikey: str | None = Depends(apikey)) -> Caller:
    try:
        return _caller(request)
    except AuthError as exc:
        raise unauthorized(str(exc)) from None


async def authenticate_if_any(request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                              _apikey: str | None = Depends(apikey)) -> Caller | None:
    """The caller, or None for a request with no credentials at all (a load balancer's probe);
    bad credentials are still a 401."""
    try:
        return _caller(request)
    except NoCredentials:
        return None
    except AuthError as exc:
        raise unauthorized(str(exc)) from None


def _caller(request: Request) -> Caller:
    return caller_from_headers(request.headers.get("authorization"), request.headers.get("apikey"),
                               request.app.state.jwt_secret)


async def json_body(request: Request) -> Jsonb:
    """The request body as jsonb, exactly as sent; only "is it JSON at all" is checked here."""
    value = await read_json(request)
    if value is None:
        raise invalid("request", "the body must be a JSON object")
    return Jsonb(value)


_Model = TypeVar("_Model", bound=BaseModel)


def _typed(model: type[_Model], body: Jsonb) -> _Model:
    """A body for a function that takes typed arguments (not jsonb): convert it with the
    documented model; a value of the wrong type is a 400 naming the field."""
    try:
        return model.model_validate(body.obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][-1]) if first["loc"] else "request"
        what = "is required" if first["type"] == "missing" else first["msg"]
        raise invalid(field, f"{field}: {what}") from None


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _call(request: Request, caller: Caller, query: QueryNoTemplate, params: Params | None = None
                ) -> JSONResponse:
    """One SQL API call as the caller; its jsonb is the 200 body. (Returned as a response so
    the body is the database's own, not re-serialised through the documentation models.)"""
    return JSONResponse(await _database(request).one(caller, query, params))


COMMON = (400, 401, 403, 503)
POSTED = (*COMMON, 404, 413)


@router.post("/assignments/auto-assign", tags=["assignments"], openapi_extra=_body_doc(models.AutoAssignRequest),
             response_model=models.AutoAssignResult, summary="Assign a work item (or queue it)",
             responses={202: {"model": models.AutoAssignResult, "description": "queued: nobody eligible has room"},
                        **_errors(*POSTED)})
async def auto_assign(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`auto_assign(request)`: 200 when assigned, 202 when queued. Idempotent per active work item
    (`existing: true` says nothing was written)."""
    result = await _database(request).one(caller, "SELECT auto_assign(%s)", [await json_body(request)])
    return JSONResponse(result, status_code=202 if result.get("status") == "queued" else 200)


@router.post("/assignments/manual-override", tags=["assignments"],
             openapi_extra=_body_doc(models.ManualOverrideRequest), response_model=models.OverrideResult,
             summary="Hand an item to a named person (supervisors, unit heads, admins)",
             responses=_errors(*POSTED, 409))
async def manual_override(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`manual_override(request)`; audited. Exceeding the person's WIP limit needs `allow_exceed_wip: true`."""
    return await _call(request, caller, "SELECT manual_override(%s)", [await json_body(request)])


# Without a priority filter the page is a prefix of the served order: queue_head reads only
# each priority's first offset+limit items (positions are within the unit either way) and
# the total is a plain count -- the view numbers every queued row. At 10,000 queued: 57 -> 23 ms
# for an admin, 35 -> 3 ms for a trusted caller.
QUEUE_HEAD_SQL = """
SELECT jsonb_build_object(
  'total', (SELECT count(*) FROM assignment_queue q
            WHERE %(unit_id)s::text IS NULL OR q.target_unit_id = %(unit_id)s::text),
  'limit', %(limit)s::integer,
  'offset', %(offset)s::integer,
  'items', coalesce((SELECT jsonb_agg(to_jsonb(page) ORDER BY page.effective_rank DESC, page.created_at, page.seq)
                     FROM (SELECT * FROM queue_head(%(unit_id)s::text, %(limit)s::integer + %(offset)s::integer) h
                           ORDER BY h.effective_rank DESC, h.created_at, h.seq
                           OFFSET %(offset)s::integer) page), '[]'::jsonb))
"""
QUEUE_SQL = """
WITH visible AS (
  SELECT q.* FROM assignment_queue_ordered q
  WHERE (%(unit_id)s::text IS NULL OR q.target_unit_id = %(unit_id)s::text)
    AND (%(priority)s::text IS NULL OR q.priority::text = %(priority)s::text))
SELECT jsonb_build_object(
  'total', (SELECT count(*) FROM visible),
  'limit', %(limit)s::integer,
  'offset', %(offset)s::integer,
  'items', coalesce((SELECT jsonb_agg(to_jsonb(page) ORDER BY page.effective_rank DESC, page.created_at, page.seq)
                     FROM (SELECT * FROM visible ORDER BY effective_rank DESC, created_at, seq
                           LIMIT %(limit)s::integer OFFSET %(offset)s::integer) page), '[]'::jsonb))
"""


@router.get("/assignments/queue", tags=["assignments"], response_model=models.QueuePage,
            summary="The queue the caller may see, by aged priority then age", responses=_errors(*COMMON))
async def queue(request: Request, caller: Caller = Depends(authenticate),
                unit_id: str | None = Query(None, max_length=models.ID_MAX_LENGTH,
                                            description="only items waiting for this unit"),
                priority: str | None = Query(None, max_length=models.ID_MAX_LENGTH,
                                             description="only items of this priority"),
                limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000)) -> JSONResponse:
    """The queue in the order it will be served, as `assignment_queue_ordered` has it (row
    level security shows supervisors their units' queue, plain staff nothing); without a
    priority filter read through `queue_head`. Filters match exactly; an unknown unit or
    priority simply matches nothing."""
    fast = priority is None and offset + limit <= catalog.QUEUE_HEAD_MAX
    return await _call(request, caller, QUEUE_HEAD_SQL if fast else QUEUE_SQL,
                       {"unit_id": unit_id, "priority": priority, "limit": limit, "offset": offset})


@router.get("/assignments/my-assignments", tags=["assignments"], response_model=models.MyAssignments,
            summary="The caller's active assignments with SLA status", responses=_errors(*COMMON))
async def my_assignments(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`my_assignments()` for the token's subject (403 for a token without `sub`)."""
    return await _call(request, caller, "SELECT my_assignments()")


@router.post("/assignments/escalate", tags=["assignments"], openapi_extra=_body_doc(models.EscalateRequest),
             response_model=models.EscalateResult, summary="Escalate an assignment one level up its chain",
             responses=_errors(*POSTED))
async def escalate(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`escalate_assignment(request)`: the assignee, their supervisors or a trusted service."""
    return await _call(request, caller, "SELECT escalate_assignment(%s)", [await json_body(request)])


@router.post("/assignments/review", tags=["assignments"], openapi_extra=_body_doc(models.ReviewRequest),
             response_model=models.ReviewResult,
             summary="Review an item flagged by the leave policy: keep it or reassign it",
             responses=_errors(*POSTED, 409))
async def review(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`review_assignment(request)`: supervisors and unit heads of the item's unit subtree,
    admins, service_role. Clears `needs_review` with a note, or reassigns; audited."""
    return await _call(request, caller, "SELECT review_assignment(%s)", [await json_body(request)])


@router.post("/assignments/respond", tags=["assignments"], openapi_extra=_body_doc(models.RespondRequest),
             response_model=models.RespondResult, summary="Record the first response to an assignment",
             responses=_errors(*POSTED))
async def respond(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`respond_assignment(request)`: stops the response clock; the assignee, their supervisors or a
    trusted service. Idempotent (`existing: true`: the first response stands, nothing written)."""
    return await _call(request, caller, "SELECT respond_assignment(%s)", [await json_body(request)])


@router.post("/assignments/complete", tags=["assignments"], openapi_extra=_body_doc(models.CompleteRequest),
             response_model=models.CompleteResult, summary="Complete an assignment (beyond the guide)",
             responses=_errors(*POSTED))
async def complete(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`complete_assignment(assignment_id)`; the freed capacity takes the best queued item.
    Not one of the guide's endpoints; here so a front end can close the loop."""
    body = _typed(models.CompleteRequest, await json_body(request))
    return await _call(request, caller, "SELECT complete_assignment(%s)", [body.assignment_id])


@router.get("/capacity/check", tags=["capacity"], response_model=models.CapacityResult,
            summary="A unit's capacity now", responses=_errors(*COMMON, 404))
async def capacity_check(request: Request, caller: Caller = Depends(authenticate),
                         unit_id: str = Query(max_length=models.ID_MAX_LENGTH,
                                              description="a unit id of rules/units.yaml")) -> JSONResponse:
    """`capacity_check(unit_id)`."""
    return await _call(request, caller, "SELECT capacity_check(%s::text)", [unit_id])


@router.post("/staff/availability", tags=["staff"], openapi_extra=_body_doc(models.AvailabilityRequest),
             response_model=models.AvailabilityResult, summary="Change a person's availability",
             responses=_errors(*POSTED, 409))
async def staff_availability(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`set_staff_availability(request)`: the person, their supervisors or a trusted service.
    Going on leave applies the leave policy (reassign or flag their work)."""
    return await _call(request, caller, "SELECT set_staff_availability(%s)", [await json_body(request)])


@router.post("/staff/profile", tags=["staff"], openapi_extra=_body_doc(models.StaffProfileRequest),
             response_model=models.StaffProfileResult, summary="Add or update a staff profile (admins, service_role)",
             responses=_errors(*POSTED))
async def staff_profile(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
    """`upsert_staff_profile(profile)`, how staff data arrives (HR sync): `id` is the person's
    user id, so re-sending updates. A new person or a raised WIP limit takes queued work at once."""
    return await _call(request, caller, "SELECT upsert_staff_profile(%s)", [await json_body(request)])


# Health is asked as the trusted service role whoever calls: the bare status tells nothing
# about the data, and a load balancer or an anon-key client has no grant on engine_health().
HEALTH_PROBE = Caller(role="service_role", claims={"role": "service_role"})


@router.get("/health/assignment-engine", tags=["health"], response_model=models.Health,
            summary="Engine health: 200 healthy, 503 degraded",
            openapi_extra={"security": [{}]},      # (added to the two schemes: no credentials at all will do)
            responses={503: {"model": models.Health, "description": "degraded (or the database is unreachable)"},
                       **_errors(401)})
async def health(request: Request, caller: Caller | None = Depends(authenticate_if_any)) -> JSONResponse:
    """`engine_health()`: `{status}` for any caller, also with no token at all (load balancer
    probes) and with the anon key; the details (`reasons`, `checks`, `version`) only for
    `service_role`. When the database cannot be reached at all the answer is still in this
    shape: status degraded, checks.database.ok false."""
    try:
        result = await _database(request).one(HEALTH_PROBE, "SELECT engine_health()")
    except ApiError as exc:
        if exc.error not in ("unavailable", "busy"):
            raise
        result = {"status": "degraded", "reasons": [exc.message], "version": None,
                  "checks": {"database": {"ok": False, "error": exc.message}}}
    if caller is None or caller.role != "service_role":
        result = {"status": result.get("status")}
    return JSONResponse(result, status_code=200 if result.get("status") == "healthy" else 503)


# Privileges are checked for every table a statement names, even when no row is read.
EVENTS_PROBE = ("SELECT current_user_id(), (SELECT count(*) FROM assignments WHERE false),"
                " (SELECT count(*) FROM escalation_events WHERE false)")


@router.get("/assignments/events", tags=["assignments"],
            summary="Stream the caller's assignment and escalation changes", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "server-sent events: ready, assignment_changes, escalation_events, closed"},
                       **_errors(401, 403, 503)})
async def events(request: Request, caller: Caller = Depends(authenticate)) -> StreamingResponse:
    """Server-sent events (beyond the guide, for deployments without Supabase Realtime): each
    change to an assignment, and each escalation event, that the caller may see — row level
    security decides, asked as the caller for every event. A role that may not read its
    own identity (`current_user_id()`: anon) or read assignments and escalation events is
    refused with 403: the database is asked, as the caller, before the stream starts."""
    await _database(request).one(caller, EVENTS_PROBE)
    hub: EventHub = request.app.state.events
    await hub.ensure_listening()
    return StreamingResponse(hub.stream(caller), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
