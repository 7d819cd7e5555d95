"""`rulesctl staff import` against a real engine: dry run, apply, a second import, bad lines
(hostile ones too), leavers, WIP limits under load, and the CLI from another directory."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from engine_calls import call, uid

from engine.database.invariants import unit_counts_off
from engine.operations.roster import RosterError
from engine.operations.staff_import import import_staff

pytestmark = pytest.mark.db

HEADER = "id,unit,full_name,role,skills,wip_limit,availability\n"


def roster(tmp_path: Path, lines: str, header: str = HEADER, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + lines)
    return path


def snapshot(conn) -> tuple:
    """Everything the import may write, as plain rows."""
    return (conn.execute("SELECT id, unit_id, full_name, role, wip_limit, availability_status, skills, "
                         "current_assignment_count, has_room, version, updated_at FROM staff_profiles ORDER BY id"
                         ).fetchall(),
            conn.execute("SELECT * FROM staff_skills ORDER BY staff_id, skill_id").fetchall(),
            conn.execute("SELECT * FROM unit_staff_counts ORDER BY unit_id").fetchall())


@pytest.fixture
def staffed(conn):
    """Ann (unit-it-support, holding two tickets), Bob (unit-translation), Cid (unit-hr, a leaver-to-be)."""
    call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-it-support", "full_name": "Ann",
                                        "wip_limit": 3, "skills": {"skill-network": "basic"}})
    call(conn, "upsert_staff_profile", {"id": uid(2), "unit_id": "unit-translation", "full_name": "Bob",
                                        "skills": {"skill-arabic": "expert", "skill-english": "proficient"}})
    call(conn, "upsert_staff_profile", {"id": uid(3), "unit_id": "unit-hr", "full_name": "Cid"})
    for n in (1, 2):
        assert call(conn, "auto_assign", {"work_item_id": f"t-{n}", "work_item_type": "ticket",
                                          "priority": "normal"})["assignee_id"] == uid(1)
    return conn


# Ann moves and changes level and limit, Bob is unchanged, Dan and Eve are new, Cid left.
CHANGED_ROSTER = (f"{uid(1)},unit-data-requests,Ann,supervisor,skill-network:expert;skill-sql,2,\n"
                  f"{uid(2)},unit-translation,Bob,staff,skill-english:proficient;skill-arabic:3,,\n"
                  f"{uid(4)},unit-hr,Dan,,,,\n"
                  f"{uid(5)},unit-it-support,\"O'Brien \"\"East\"\"; $fn$ --\",staff,skill-network:2,4,busy\n")


def test_dry_run_counts_exact_and_nothing_written(staffed, engine_url, tmp_path):
    before = snapshot(staffed)
    result = import_staff(engine_url, roster(tmp_path, CHANGED_ROSTER), dry_run=True)
    assert [(line, id_) for line, id_, _, _ in result.added] == [(4, uid(4)), (5, uid(5))]
    assert [(c.line, c.staff_id, c.field, c.old, c.new) for c in result.changes] == [
        (2, uid(1), "unit", "unit-it-support", "unit-data-requests"),
        (2, uid(1), "role", "staff", "supervisor"),
        (2, uid(1), "wip_limit", "3", "2"),
        (2, uid(1), "skills", "skill-network:basic", "skill-network:expert;skill-sql:basic")]
    assert (result.changed, result.unchanged) == (1, 1)
    assert [(id_, name, load) for id_, name, _, _, load in result.leavers] == [(uid(3), "Cid", 0)]
    assert result.over_limit == []            # Ann holds 2, her new limit is 2
    assert snapshot(staffed) == before


def test_apply_writes_rows_and_skills_keeps_counters_and_a_second_import_changes_nothing(staffed, engine_url,
                                                                                        tmp_path):
    path = roster(tmp_path, CHANGED_ROSTER)
    versions = dict(staffed.execute("SELECT id::text, version FROM staff_profiles").fetchall())
    result = import_staff(engine_url, path)
    assert (len(result.added), result.changed, result.unchanged, len(result.leavers)) == (2, 1, 1, 1)
    assert result.set_based
    rows = {r[0]: r[1:] for r in staffed.execute(
        "SELECT id::text, unit_id, full_name, role, wip_limit, availability_status::text, skills, "
        "current_assignment_count, version FROM staff_profiles").fetchall()}
    assert rows == {
        uid(1): ("unit-data-requests", "Ann", "supervisor", 2, "available", ["skill-network", "skill-sql"], 2,
                 versions[uid(1)] + 1),
        uid(2): ("unit-translation", "Bob", "staff", None, "available", ["skill-arabic", "skill-english"], 0,
                 versions[uid(2)]),
        uid(3): ("unit-hr", "Cid", "staff", None, "available", [], 0, versions[uid(3)]),       # kept
        uid(4): ("unit-hr", "Dan", "staff", None, "available", [], 0, 1),
        uid(5): ("unit-it-support", "O'Brien \"East\"; $fn$ --", "staff", 4, "busy", ["skill-network"], 0, 1)}
    assert staffed.execute("SELECT staff_id::text, skill_id, proficiency FROM staff_skills ORDER BY 1, 2"
                           ).fetchall() == [
        (uid(1), "skill-network", "expert"), (uid(1), "skill-sql", "basic"),
        (uid(2), "skill-arabic", "expert"), (uid(2), "skill-english", "proficient"),
        (uid(5), "skill-network", "proficient")]
    assert unit_counts_off(staffed) == []
    assert dict(staffed.execute("SELECT unit_id, staff FROM unit_staff_counts WHERE staff > 0").fetchall()) == {
        "unit-data-requests": 1, "unit-translation": 1, "unit-hr": 2, "unit-it-support": 1}
    # the row triggers the merge stood in for are on again
    assert staffed.execute("SELECT count(*) FROM pg_trigger WHERE tgname IN ('staff_unit_count_trigger', "
                           "'staff_skills_sync_trigger') AND tgenabled = 'O'").fetchone()[0] == 2

    before = snapshot(staffed)
    again = import_staff(engine_url, path)
    assert (len(again.added), again.changed, again.unchanged) == (0, 0, 4)
    assert snapshot(staffed) == before


def test_a_wip_limit_below_the_current_load_is_allowed_and_reported(staffed, engine_url, tmp_path):
    result = import_staff(engine_url, roster(tmp_path, f"{uid(1)},unit-it-support,Ann,,skill-network,1,\n"))
    assert result.over_limit == [(2, uid(1), 2, 1)]
    assert staffed.execute("SELECT wip_limit, current_assignment_count, has_room FROM staff_profiles WHERE id = %s",
                           [uid(1)]).fetchone() == (1, 2, False)


def test_leavers_offline_and_columns_left_out_keep_their_values(staffed, engine_url, tmp_path):
    path = roster(tmp_path, f"{uid(1)},unit-it-support,Ann B.\n{uid(2)},unit-translation,Bob\n",
                  header="id,unit,full_name\n")
    result = import_staff(engine_url, path, leavers="offline")
    assert [c.field for c in result.changes] == ["full_name"]
    rows = dict(staffed.execute("SELECT id::text, (full_name, wip_limit, availability_status::text, skills, "
                                "current_assignment_count)::text FROM staff_profiles").fetchall())
    assert rows == {uid(1): '("Ann B.",3,available,{skill-network},2)',
                    uid(2): '(Bob,,available,"{skill-arabic,skill-english}",0)',
                    uid(3): "(Cid,,offline,{},0)"}


def test_going_on_leave_applies_the_leave_policy(staffed, engine_url, tmp_path):
    call(staffed, "upsert_staff_profile", {"id": uid(6), "unit_id": "unit-it-support", "full_name": "Fay"})
    urgent = call(staffed, "auto_assign", {"work_item_id": "t-urgent", "work_item_type": "ticket",
                                           "priority": "urgent"})
    holder = urgent["assignee_id"]
    lines = "".join(f"{id_},unit-it-support,{name},,,,{'on_leave' if id_ == holder else ''}\n"
                    for id_, name in ((uid(1), "Ann"), (uid(6), "Fay")))
    result = import_staff(engine_url, roster(tmp_path, lines))
    assert result.leave_policy["reassigned"] + result.leave_policy["queued"] == 1
    assert staffed.execute("SELECT assignee_id::text <> %s FROM assignments WHERE work_item_id = 't-urgent' "
                           "AND status IN ('assigned', 'in_progress', 'on_hold') UNION ALL "
                           "SELECT true FROM assignment_queue WHERE work_item_id = 't-urgent'", [holder]
                           ).fetchall() == [(True,)]


BAD_LINES = [
    (f"{uid(7)},unit-x,Al,,,,", "unit", 'unknown unit "unit-x"'),
    (f"{uid(8)},unit-hr,Al,,skill-arabic:master,,", "skills",
     'skill-arabic: unknown proficiency level "master"; known: basic (1), proficient (2), expert (3)'),
    (f"{uid(9)},unit-hr,Al,,skill-arabic:4,,", "skills", 'unknown proficiency level "4"'),
    (f"{uid(10)},unit-hr,Al,,,-2,", "wip_limit", 'must be a whole number from 0 to 999999'),
    (f"{uid(11)},unit-hr,Al,,,2.5,", "wip_limit", '(found "2.5")'),
    (f"{uid(7)},unit-hr,Al,,,,", "id", f"duplicate id {uid(7)}: also on line 3"),
    (f"{uid(12)},\"unit-hr'\"\"; DROP TABLE staff_profiles; --\",Al,,,,", "unit",
     'unknown unit "unit-hr\'\\"; DROP TABLE staff_profiles; --"'),
    (f"{uid(13)},unit-hr,\"two\nlines\",,,,", "full_name", "must be one line of text"),
    (f"{uid(15)},unit-hr,Al,,$fn$;skill-arabic,,", "skills", 'unknown skill "$fn$"'),
    ("a" * 300 + ",unit-hr,Al,,,,", "id", 'not a UUID: "' + "a" * 80 + '"…'),
    (f"{uid(16)},unit-hr,Al\udced\udca0\udc80x,,,,", "full_name", "not valid UTF-8 text (byte 0xed)"),
    (f"{uid(17)},unit-hr,Al,chief,,,", "role", 'unknown role "chief"'),
    (f"{uid(18)},unit-hr,Al,,,,away", "availability", 'unknown availability "away"'),
    (f"{uid(19)},unit-hr,Al,,skill-sql;skill-sql:2,,", "skills", "skill-sql appears more than once"),
    (f"{uid(20)},unit-hr", "line", "expected 7 fields"),
    (f"{uid(21)},unit-hr\x00,Al,,,,", "unit", "contains a NUL character"),
    (f"{uid(22)},,,,,,", "unit", "required"),
]


def test_every_bad_line_is_reported_with_its_line_and_field_and_nothing_is_written(staffed, engine_url, tmp_path):
    before = snapshot(staffed)
    good = f"{uid(30)},unit-hr,Good Person,,,,\n"
    text = HEADER + good + "".join(line + "\n" for line, _, _ in BAD_LINES)
    path = tmp_path / "roster.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(RosterError) as caught:
        import_staff(engine_url, path, shown_path="roster.csv")
    problems = caught.value.problems
    # line numbers in the file: the header is 1, the good line 2, the two-line name takes 2 lines
    starts, line = [], 3
    for text_line, _, _ in BAD_LINES:
        starts.append(line)
        line += 1 + text_line.count("\n")
    expected = {(start, field) for start, (_, field, _) in zip(starts, BAD_LINES, strict=True)}
    expected.add((starts[-1], "full_name"))                     # the empty line also lacks a name
    assert {(p.line, p.field) for p in problems} == expected
    for start, (_, field, message) in zip(starts, BAD_LINES, strict=True):
        rendered = [p.render("roster.csv") for p in problems if (p.line, p.field) == (start, field)]
        assert any(r.startswith(f"roster.csv:{start}: {field}: ") and message in r for r in rendered), rendered
    # duplicate ids point back at the first line (line 3 here: the first bad line)
    assert snapshot(staffed) == before
    assert staffed.execute("SELECT to_regclass('staff_profiles') IS NOT NULL").fetchone()[0]


def test_a_bad_header_is_reported_before_any_row(engine_url, tmp_path):
    path = roster(tmp_path, f"{uid(1)},unit-hr,Al\n", header="id,unit,name,colour\n")
    with pytest.raises(RosterError) as caught:
        import_staff(engine_url, path)
    assert [p.message for p in caught.value.problems] == [
        'unknown column "name"; known: id, unit, full_name, role, skills, wip_limit, availability',
        'unknown column "colour"; known: id, unit, full_name, role, skills, wip_limit, availability',
        "missing column full_name (required: id, unit, full_name)"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_cli_from_another_directory(engine_url, tmp_path):
    elsewhere = tmp_path / "hr-exports"
    elsewhere.mkdir()
    roster(elsewhere, f"{uid(1)},unit-hr,Al,,skill-arabic:expert,,\n{uid(2)},unit-x,Bo,,,,\n", name="bad.csv")
    roster(elsewhere, f"{uid(1)},unit-hr,Al,,skill-arabic:expert,,\n", name="good.csv")
    bad = run_cli("staff", "import", "bad.csv", "--database-url", engine_url, cwd=elsewhere)
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.splitlines() == ['bad.csv:3: unit: unknown unit "unit-x"',
                                       "1 problem(s) in bad.csv; nothing was written"]
    dry = run_cli("staff", "import", "good.csv", "--dry-run", "--database-url", engine_url, cwd=elsewhere)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("good.csv: 1 rows: 1 to add, 0 to change, 0 unchanged; 0 leaver(s)")
    done = run_cli("staff", "import", "good.csv", "--database-url", engine_url, "--format", "json", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert '"added": 1' in done.stdout
    with psycopg.connect(engine_url) as conn:
        assert conn.execute("SELECT full_name, skills FROM staff_profiles").fetchall() == [("Al", ["skill-arabic"])]


def test_a_role_that_does_not_own_the_staff_tables_imports_with_the_row_triggers(staffed, engine_url, tmp_path):
    from psycopg.conninfo import make_conninfo
    role = f"importer_{uuid.uuid4().hex[:8]}"
    staffed.execute(f"CREATE ROLE {role} LOGIN BYPASSRLS; GRANT USAGE ON SCHEMA public TO {role}; "
                    f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; "
                    f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")
    try:
        result = import_staff(make_conninfo(engine_url, user=role), roster(tmp_path, CHANGED_ROSTER))
        assert not result.set_based
        assert (len(result.added), result.changed, result.unchanged) == (2, 1, 1)
    finally:
        staffed.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
    assert unit_counts_off(staffed) == []
    assert staffed.execute("SELECT count(*) FROM staff_profiles s WHERE skills <> ARRAY(SELECT k.skill_id "
                           "FROM staff_skills k WHERE k.staff_id = s.id ORDER BY k.skill_id)").fetchone()[0] == 0
    assert staffed.execute("SELECT skills FROM staff_profiles WHERE id = %s", [uid(1)]).fetchone()[0] == [
        "skill-network", "skill-sql"]


def test_imports_while_work_is_assigned_and_completed_keep_every_invariant(conn, engine_url, tmp_path):
    from engine.database.invariants import counters_off, duplicate_active_assignments, queued_and_assigned
    people = 300
    units = ("unit-it-support", "unit-hr")
    first = "".join(f"{uid(n)},unit-it-support,P{n},,skill-network,3,\n" for n in range(1, people + 1))
    moved = "".join(f"{uid(n)},{units[n % 2]},P{n},,skill-network:{1 + n % 3},{2 + n % 3},\n"
                    for n in range(1, people + 1))
    import_staff(engine_url, roster(tmp_path, first, name="first.csv"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(worker_id: int) -> None:
        try:
            with psycopg.connect(engine_url, autocommit=True) as worker:
                n = 0
                while not stop.is_set():
                    n += 1
                    done = call(worker, "auto_assign", {"work_item_id": f"c-{worker_id}-{n}",
                                                        "work_item_type": "ticket", "priority": "normal"})
                    if done["status"] == "assigned" and n % 2:
                        worker.execute("SELECT complete_assignment(%s)", [done["assignment_id"]])
        except BaseException as exc:            # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    try:
        for path in (roster(tmp_path, moved, name="moved.csv"), roster(tmp_path, first, name="back.csv")) * 2:
            import_staff(engine_url, path)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert unit_counts_off(conn) == []
    assert counters_off(conn) == []
    assert duplicate_active_assignments(conn) == [] and queued_and_assigned(conn) == []
    assert conn.execute("SELECT count(*) FROM assignments").fetchone()[0] > 0
