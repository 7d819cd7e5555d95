"""The OpenAPI description of the endpoints' bodies. Documentation only: requests reach the SQL
API as the JSON the client sent, and the SQL API alone validates them (its 22023 errors become
400s naming the field), so the server never disagrees with the database about what is valid.
The length limits are the SQL API's (api_text: ID_MAX_LENGTH for ids and policy names,
TEXT_MAX_LENGTH for free text), documented here as maxLength; tests/api/test_api_limits.py holds
the two equal. Responses are the SQL API's jsonb as it is; fields the database adds later are allowed.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

ID_MAX_LENGTH = 200        # api_text.sql.j2: ids, and names of the policy (types, priorities, statuses)
TEXT_MAX_LENGTH = 2000     # api_text.sql.j2: free text (reason, full_name, email)


def _id(description: str | None = None, **options: Any) -> Any:
    return Field(min_length=1, max_length=ID_MAX_LENGTH, description=description, **options)


def _text(**options: Any) -> Any:
    return Field(min_length=1, max_length=TEXT_MAX_LENGTH, **options)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    error: str = Field(description="invalid_input, not_found, unauthorized, forbidden, busy, unavailable, "
                                   "internal, or the HTTP reason for routing errors (not_found, method_not_allowed)")
    message: str
    field: str | None = Field(None, description="the request field at fault (400 and 404 from the SQL API)")


# ----------------------------------------------------------------------------- requests

class AutoAssignRequest(BaseModel):
    work_item_id: str = _id()
    work_item_type: str = _id("a work item type of rules/work_items.yaml, e.g. ticket")
    priority: str = _id("a priority of rules/work_items.yaml: low, normal, high, urgent")
    required_skills: list[str] | None = Field(None, description="skill ids of rules/skills.yaml")
    target_unit_id: str | None = _id("wins over the unit the rules would pick", default=None)


class ManualOverrideRequest(BaseModel):
    assignment_id: str | None = _id("uuid; give this or work_item_id", default=None)
    work_item_id: str | None = _id("for an active or queued item", default=None)
    assignee_id: str = _id("uuid of the staff member who takes the item")
    reason: str = _text()
    allow_exceed_wip: bool = False
    version: int | None = Field(None, description="the assignment version you read; 409 if it changed since")


class EscalateRequest(BaseModel):
    assignment_id: str = _id("uuid")
    reason: str = _text()


class RespondRequest(BaseModel):
    assignment_id: str = _id("uuid")
    note: str | None = _text(default=None, description="kept in the audit row")


class CompleteRequest(BaseModel):
    assignment_id: UUID


class ReviewRequest(BaseModel):
    assignment_id: str = _id("uuid of an active assignment the leave policy flagged (needs_review)")
    action: Literal["keep", "reassign"] = Field(description="keep: clear the flag; reassign: move the item")
    note: str = _text(description="what the review found (audited)")
    assignee_id: str | None = _id("uuid; reassign to this person (else the best eligible one, or the queue)",
                                  default=None)
    allow_exceed_wip: bool = False
    version: int | None = Field(None, description="the assignment version you read; 409 if it changed since")


class AvailabilityRequest(BaseModel):
    staff_id: str = _id("uuid")
    status: str = _id("an availability_status value: available, busy, on_leave, ...")
    until: str | None = _id("timestamp with time zone (ISO 8601)", default=None)
    reason: str | None = _text(default=None)
    version: int | None = Field(None, description="the staff profile version you read; 409 if it changed since")


class StaffProfileRequest(BaseModel):
    id: str = _id("uuid: the person's user id (re-sending updates)")
    unit_id: str = _id("a unit id of rules/units.yaml")
    full_name: str = _text()
    role: str | None = _id("staff (default), supervisor, unit_head or admin", default=None)
    email: str | None = _text(default=None)
    skills: list[str] | dict[str, str] | None = Field(
        None, description="skill ids (held at the lowest proficiency) or {skill id: proficiency level}")
    wip_limit: int | None = Field(None, ge=0, description="null for the unit's default")
    availability_status: str | None = _id("an availability_status value; on_leave applies the leave policy",
                                          default=None)


# ---------------------------------------------------------------------------- responses

class AutoAssignResult(_Open):
    status: Literal["assigned", "queued"]
    existing: bool = Field(description="true when the item was already assigned or queued (nothing written)")
    assignment_id: str | None = None
    assignee_id: str | None = None
    queue_id: str | None = None
    position: int | None = None
    sla_deadline: str | None = None
    rule_id: str | None = None


class OverrideResult(_Open):
    assignment_id: str
    work_item_id: str
    assignee_id: str
    previous_assignee_id: str | None = None
    status: str


class QueueItem(_Open):
    id: str
    work_item_id: str
    work_item_type: str
    priority: str
    target_unit_id: str
    effective_rank: int
    position: int
    sla_deadline: str | None = None
    created_at: str
    seq: int = Field(description="arrival order: items queued at the same created_at are served in this order")


class QueuePage(BaseModel):
    total: int = Field(description="queued items the caller may see that match the filters")
    limit: int
    offset: int
    items: list[QueueItem]


ResponseStatus = Literal["met", "on_track", "at_risk", "breached", "none"]


class MyAssignment(_Open):
    assignment_id: str
    work_item_id: str
    work_item_type: str
    priority: str
    status: str
    assigned_at: str
    sla_deadline: str | None = None
    seconds_left: float | None = None
    sla_status: str = Field(description="on_track, at_risk, breached (none without an SLA target)")
    needs_review: bool
    response_deadline: str | None = Field(None, description="the response clock's deadline (working time from "
                                                            "assigned_at)")
    responded_at: str | None = Field(None, description="the first response: in_progress, or assignments/respond")
    response_status: ResponseStatus = Field(description="met (answered by the deadline), on_track, at_risk, "
                                                        "breached (answered late or not yet and past it)")


class MyAssignments(_Open):
    staff_id: str
    assignments: list[MyAssignment]


class EscalateResult(_Open):
    event_id: str
    assignment_id: str
    level: int
    recipient_id: str | None = None


class DequeuedItem(BaseModel):
    queue_id: str
    work_item_id: str
    assignment_id: str
    assignee_id: str


class RespondResult(_Open):
    assignment_id: str
    work_item_id: str
    assignee_id: str
    responded_at: str
    response_deadline: str | None = None
    response_status: ResponseStatus
    existing: bool = Field(description="true when a response was already recorded (nothing written)")


class CompleteResult(_Open):
    assignment_id: str
    status: str
    completed_at: str | None = None
    next: DequeuedItem | None = Field(None, description="the queued item that took the freed slot, if any")
    dequeued: list[DequeuedItem] = Field([], description="every queued item the freed capacity took")


class ReviewResult(_Open):
    assignment_id: str = Field(description="the item's active assignment after the review")
    reviewed_assignment_id: str
    work_item_id: str
    action: Literal["keep", "reassign"]
    outcome: Literal["kept", "reassigned", "queued"]
    assignee_id: str | None = None
    previous_assignee_id: str | None = None
    queue_id: str | None = Field(None, description="when reassigning found nobody with room: the queue entry")


class CapacityResult(_Open):
    unit_id: str
    staff: int
    capacity: int
    assigned: int
    free_slots: int
    utilisation: float | None = None
    queue_depth: int


class AvailabilityResult(_Open):
    staff_id: str
    status: str
    previous_status: str | None = None


class StaffProfileResult(_Open):
    staff_id: str
    created: bool
    version: int
    unit_id: str
    assigned_from_queue: int = Field(description="queued items the person took at once")


class Health(_Open):
    status: Literal["healthy", "degraded"]
    checks: dict[str, Any] | None = Field(None, description="only for service_role, as are reasons and version")
    version: dict[str, Any] | None = None
