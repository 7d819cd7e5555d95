"""The diff as set algebra over keys, without a database: added, changed, removed (owned),
foreign (unowned, reported only for kinds that say so), in sorted order."""

from __future__ import annotations

from engine.migrate.diff import diff
from engine.migrate.model import ChangeType, LiveObject


def snapshot(*objects: LiveObject) -> dict:
    return {obj.key: obj for obj in objects}


def test_added_changed_removed_and_foreign():
    desired = snapshot(LiveObject("table", "public.b", 1), LiveObject("table", "public.a", 1),
                       LiveObject("view", "public.v", "new"), LiveObject("view", "public.same", "x"))
    live = snapshot(LiveObject("view", "public.v", "old"), LiveObject("view", "public.same", "x"),
                    LiveObject("table", "public.gone", 1), LiveObject("table", "public.theirs", 1))
    result = diff(desired, live, owned={"table:public.gone", "view:public.v"})
    assert [(c.action, c.key) for c in result.changes] == [
        (ChangeType.CREATE, "table:public.a"), (ChangeType.CREATE, "table:public.b"),
        (ChangeType.CHANGE, "view:public.v"), (ChangeType.DROP, "table:public.gone")]
    assert result.foreign == ("table:public.theirs",)
    created, _, changed, dropped = result.changes
    assert (created.desired, created.live) == (desired["table:public.a"], None)
    assert (changed.wanted, changed.found) == ("new", "old")
    assert (dropped.desired, dropped.live) == (None, live["table:public.gone"])


def test_unowned_grants_rows_and_roles_are_not_news():
    live = snapshot(LiveObject("grant", "public.x.select", ["anon"]), LiveObject("seed", "public.skills/x", {}),
                    LiveObject("role", "someone", {}), LiveObject("cron_job", "theirs", {}))
    result = diff({}, live, owned=set())
    assert result.changes == () and result.foreign == ("cron_job:theirs",)


def test_equal_snapshots_make_no_changes_and_order_does_not_matter():
    objects = [LiveObject("function", f"public.f{i}()", {"returns": "void"}) for i in range(5)]
    assert diff(snapshot(*objects), snapshot(*reversed(objects)), owned=set()).changes == ()
    shuffled = diff(snapshot(*reversed(objects)), {}, owned=set())
    assert [c.key for c in shuffled.changes] == sorted(c.key for c in shuffled.changes)


def test_a_change_names_what_a_reason_shows():
    (change,) = diff(snapshot(LiveObject("seed", "public.skills/sql", {"a": 1})), {}, owned=set()).changes
    assert (change.kind, change.name, change.key.member) == ("seed", "public.skills/sql", "sql")
