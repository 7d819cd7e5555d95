"""Hazards: what a plan step can cost beyond the change itself. apply refuses a step whose
hazard was not allowed by name (--allow-hazard NAME)."""

from __future__ import annotations

from enum import Enum


class Hazard(Enum):
    DATA_LOSS = ("data-loss", "drops a table or column, or deletes rows: the data is gone")
    LOCK = ("lock", "rewrites or scans a table under a lock that blocks writers while it runs")
    AUTHORIZATION = ("authorization", "changes who may see or do what (row level security or grants)")
    JOB_UNSCHEDULED = ("job-unscheduled", "a scheduled job stops running")
    ENUM_VALUE_REMOVAL = ("enum-value-removal", "an enum value cannot be removed in place; rulesctl will not "
                                                "do it: migrate the rows, then recreate the type by hand")
    SEED_ROW_DELETED = ("seed-row-deleted", "deletes a policy row that no live data references")
    RETIRE_IN_USE = ("retire-in-use", "retires a unit that still has staff or work: they stay in it and get no new "
                                      "work until they are moved to a unit in service")
    REFERENCED_REMOVAL = ("referenced-removal", "removes what live data references; rulesctl will not: retire it "
                                                "(retired: true) or move the data off it first. It cannot be allowed")
    PRIVILEGE = ("privilege", "needs a privilege the applying role lacks (a managed PostgreSQL's owner is not a "
                              "superuser); the step names what a superuser must run. It cannot be allowed")
    JOB_HIDDEN = ("job-hidden", "the ledger says another role scheduled this pg_cron job, and pg_cron shows this "
                                "role only its own: that role's copy would run beside this one (twice). Allow it "
                                "only once a superuser has removed that copy (the step says how)")
    JOB_OWNER = ("job-owner", "the pg_cron job is another role's: this role's cron.schedule would add a second copy "
                              "(the job would run twice) and its cron.unschedule finds none. It cannot be allowed")

    @property
    def allowable(self) -> bool:
        """--allow-hazard lets it run; a removal of what live data references never runs, nor a
        step PostgreSQL would refuse to the applying role, nor one that would copy another role's job."""
        return self not in (Hazard.REFERENCED_REMOVAL, Hazard.PRIVILEGE, Hazard.JOB_OWNER)

    def __init__(self, slug: str, message: str):
        self.slug = slug
        self.message = message

    @classmethod
    def from_slug(cls, slug: str) -> Hazard:
        for hazard in cls:
            if hazard.slug == slug:
                return hazard
        raise ValueError(f"unknown hazard {slug!r}; known: {', '.join(h.slug for h in cls)}")
