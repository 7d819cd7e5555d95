"""Plan hazards (engine/migrate/steps.py), tests written for mutations of scripts/mutations.toml
that nothing else killed: each names the behaviour a mutation breaks, and fails when it is broken.

Dropping a table rulesctl owned, or a column added by hand, is data-loss; rebuilding a changed
index is lock; changing who holds a privilege is authorization. Each is planned with its hazard
and `apply` refuses it until that hazard is allowed by name, leaving the database as it was.
Real PostgreSQL, the small base policy.
"""

from __future__ import annotations

import pytest
from apply_support import execute, rows

from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db


def planned(url: str, base) -> dict[str, tuple[str, tuple[Hazard, ...]]]:
    """key -> (action, hazards) of every planned step."""
    return {s.key: (s.action, s.hazards) for s in build_plan(url, base[0], base[1], DEFAULT_TEMPLATES).steps}


def assert_refused_until_allowed(url: str, base, hazard: Hazard) -> None:
    """apply refuses the plan naming the hazard; allowed by name, it applies and converges."""
    with pytest.raises(HazardsBlocked, match=hazard.slug):
        apply(url, base[1], base[0], allowed=set(Hazard) - {hazard})
    assert apply(url, base[1], base[0], allowed={hazard}).outcome == "applied"
    assert planned(url, base) == {}


def test_dropping_a_table_rulesctl_owned_is_a_data_loss_hazard(base_url, base):
    """A table an older engine version created (recorded as owned) and this one no longer has."""
    execute(base_url, "CREATE TABLE public.retired_log (note text)")
    execute(base_url, "INSERT INTO public.retired_log VALUES ('a row that a drop would lose')")
    execute(base_url, "INSERT INTO rulesctl.managed_objects (key, definition_hash)"
                      " VALUES ('table:public.retired_log', 'older')")
    assert planned(base_url, base) == {"table:public.retired_log": ("drop", (Hazard.DATA_LOSS,))}
    with pytest.raises(HazardsBlocked, match="data-loss"):
        apply(base_url, base[1], base[0], allowed=set(Hazard) - {Hazard.DATA_LOSS})
    assert rows(base_url, "SELECT note FROM public.retired_log") == [("a row that a drop would lose",)]
    assert_refused_until_allowed(base_url, base, Hazard.DATA_LOSS)
    assert rows(base_url, "SELECT to_regclass('public.retired_log') IS NULL") == [(True,)]


def test_dropping_a_column_is_a_data_loss_hazard(base_url, base):
    """A column added by hand to an engine table is drift; restoring the table drops its data."""
    execute(base_url, "ALTER TABLE public.staff_profiles ADD COLUMN nickname text")
    steps = planned(base_url, base)
    assert steps == {"table:public.staff_profiles": ("alter", (Hazard.DATA_LOSS,))}
    assert_refused_until_allowed(base_url, base, Hazard.DATA_LOSS)


def test_a_changed_index_is_rebuilt_with_a_lock_hazard(base_url, base):
    """An engine index redefined by hand is dropped and built again: writers wait meanwhile."""
    execute(base_url, "DROP INDEX public.idx_staff_profiles_unit")
    execute(base_url, "CREATE INDEX idx_staff_profiles_unit ON public.staff_profiles (unit_id, id)")
    assert planned(base_url, base) == {"index:public.idx_staff_profiles_unit": ("replace", (Hazard.LOCK,))}
    assert_refused_until_allowed(base_url, base, Hazard.LOCK)


def test_a_changed_grant_is_an_authorization_hazard(base_url, base):
    """A privilege granted by hand to one more role: restoring it changes who may read what."""
    execute(base_url, "GRANT SELECT ON public.organizational_units TO anon")
    steps = planned(base_url, base)
    assert list(steps.values()) == [("replace", (Hazard.AUTHORIZATION,))], steps
    assert_refused_until_allowed(base_url, base, Hazard.AUTHORIZATION)
    assert rows(base_url, "SELECT has_table_privilege('anon', 'public.organizational_units', 'SELECT')") == [(False,)]
