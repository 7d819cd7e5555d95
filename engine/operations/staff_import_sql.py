"""The SQL of `rulesctl staff import`, set-based: every statement handles all rows at once.
Values arrive only through COPY and bound parameters; names are the engine's own tables.

Stages: STAGE (temp tables) -> COPY the records -> PROBLEMS (every bad line and field) ->
PLAN (the final values per person and what differs) -> the merge statements.
"""

from __future__ import annotations

from engine.compiler.catalog import FIXED_ENUMS

ROLES = ("staff", "supervisor", "unit_head", "admin")
AVAILABILITY = FIXED_ENUMS["availability_status"]

STAGE = """
CREATE TEMP TABLE staff_import_rows (
  line integer PRIMARY KEY, id text NOT NULL, unit text NOT NULL, full_name text NOT NULL, role text NOT NULL,
  skills text NOT NULL, wip_limit text NOT NULL, availability text NOT NULL
) ON COMMIT DROP;
-- a value quoted for a message: JSON string escaping, cut at 80 characters
CREATE FUNCTION pg_temp.shown(p_value text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT to_json(left(p_value, 80))::text || CASE WHEN length(p_value) > 80 THEN '…' ELSE '' END $$;
"""
COPY = "COPY staff_import_rows (line, id, unit, full_name, role, skills, wip_limit, availability) FROM STDIN"

# One row per skill item of a cell: `skill-arabic:expert;skill-sql` (a level by name or rank;
# none = the lowest level). proficiency is NULL when the level is unknown.
SKILLS = """
CREATE TEMP TABLE staff_import_skills ON COMMIT DROP AS
WITH spelling AS (                 -- each level by its name and by its rank
  SELECT l.id AS spelling, l.id FROM proficiency_levels l
  UNION ALL SELECT l.rank::text, l.id FROM proficiency_levels l WHERE NOT EXISTS (
    SELECT 1 FROM proficiency_levels n WHERE n.id = l.rank::text)
), items AS (
  SELECT r.line, i.item, strpos(i.item, ':') AS colon
  FROM staff_import_rows r CROSS JOIN LATERAL unnest(string_to_array(r.skills, ';')) AS i(item)
  WHERE r.skills <> '' AND trim(i.item) <> ''
), parsed AS (
  SELECT line, trim(CASE WHEN colon > 0 THEN left(item, colon - 1) ELSE item END) AS skill_id,
         nullif(trim(CASE WHEN colon > 0 THEN substr(item, colon + 1) END), '') AS level_text
  FROM items
)
SELECT p.line, p.skill_id, p.level_text,
       CASE WHEN p.level_text IS NULL THEN (SELECT l.id FROM proficiency_levels l ORDER BY l.rank LIMIT 1)
            ELSE s.id END AS proficiency
FROM parsed p LEFT JOIN spelling s ON s.spelling = p.level_text;
ANALYZE staff_import_rows;
ANALYZE staff_import_skills;
"""

_UUID = "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"

# Every problem of every line: (line, field, message). Parameters: roles, availability.
PROBLEMS = f"""
WITH r AS (SELECT *, id ~ {_UUID} AS id_ok FROM staff_import_rows)
SELECT line, 'id', CASE WHEN id = '' THEN 'required' ELSE format('not a UUID: %%s', pg_temp.shown(id)) END
FROM r WHERE NOT id_ok
UNION ALL
SELECT line, 'id', format('duplicate id %%s: also on line %%s', lower(id), first_line)
FROM (SELECT line, id, min(line) OVER (PARTITION BY lower(id)) AS first_line FROM r WHERE id_ok) d
WHERE line <> first_line
UNION ALL
SELECT r.line, 'unit', CASE WHEN r.unit = '' THEN 'required'
                            WHEN u.id IS NULL THEN format('unknown unit %%s', pg_temp.shown(r.unit))
                            ELSE format('unit %%s is retired: it takes no new people', r.unit) END
FROM r LEFT JOIN organizational_units u ON u.id = r.unit
WHERE u.id IS NULL
   OR u.retired AND NOT EXISTS (SELECT 1 FROM staff_profiles s
                                WHERE s.id = CASE WHEN r.id_ok THEN r.id::uuid END AND s.unit_id = u.id)
UNION ALL
SELECT line, 'full_name', 'required' FROM r WHERE full_name = ''
UNION ALL
SELECT line, 'role', format('unknown role %%s; known: %%s', pg_temp.shown(role),
                            array_to_string(%(roles)s::text[], ', '))
FROM r WHERE role <> '' AND NOT role = ANY (%(roles)s::text[])
UNION ALL
SELECT line, 'wip_limit', format('must be a whole number from 0 to 999999, or empty for the unit''s default '
                                 '(found %%s)', pg_temp.shown(wip_limit))
FROM r WHERE wip_limit <> '' AND wip_limit !~ '^[0-9]{{1,6}}$'
UNION ALL
SELECT line, 'availability', format('unknown availability %%s; known: %%s', pg_temp.shown(availability),
                                    array_to_string(%(availability)s::text[], ', '))
FROM r WHERE availability <> '' AND NOT availability = ANY (%(availability)s::text[])
UNION ALL
SELECT k.line, 'skills', CASE
         WHEN k.skill_id = '' THEN format('an item without a skill id (%%s)', pg_temp.shown(k.level_text))
         WHEN s.id IS NULL THEN format('unknown skill %%s', pg_temp.shown(k.skill_id))
         WHEN k.proficiency IS NULL THEN format('%%s: unknown proficiency level %%s; known: %%s', k.skill_id,
              pg_temp.shown(k.level_text),
              (SELECT string_agg(l.id || ' (' || l.rank || ')', ', ' ORDER BY l.rank) FROM proficiency_levels l))
         ELSE format('%%s appears more than once', k.skill_id) END
FROM (SELECT k.*, count(*) OVER (PARTITION BY k.line, k.skill_id) AS times,
             row_number() OVER (PARTITION BY k.line, k.skill_id) AS nth
      FROM staff_import_skills k) k
LEFT JOIN skills s ON s.id = k.skill_id
WHERE (s.id IS NULL OR k.proficiency IS NULL OR k.times > 1) AND k.nth = 1
ORDER BY 1, 2, 3
"""

# The final values per person in the file, the old ones beside them. A column the file does
# not have keeps each existing person's value (parameters has_role, has_skills, has_wip);
# an empty availability keeps it too (new people: available).
PLAN = """
CREATE TEMP TABLE staff_import ON COMMIT DROP AS
WITH wanted AS (
  SELECT k.line, string_agg(k.skill_id || ':' || k.proficiency, ';' ORDER BY k.skill_id) AS skills,
         array_agg(k.skill_id ORDER BY k.skill_id) AS skill_ids
  FROM staff_import_skills k GROUP BY k.line
), held AS (
  SELECT k.staff_id, string_agg(k.skill_id || ':' || k.proficiency, ';' ORDER BY k.skill_id) AS skills
  FROM staff_skills k JOIN staff_import_rows r ON k.staff_id = r.id::uuid GROUP BY k.staff_id
)
SELECT x.*,
       NOT x.is_new AND (x.unit_id, x.full_name, x.role, x.wip_limit, x.availability_status, x.skills)
         IS DISTINCT FROM (x.old_unit_id, x.old_full_name, x.old_role, x.old_wip_limit, x.old_availability_status,
                           x.old_skills) AS changed
FROM (
SELECT r.line, r.id::uuid AS id, s.id IS NULL AS is_new,
       r.unit AS unit_id, s.unit_id AS old_unit_id,
       r.full_name, s.full_name AS old_full_name,
       CASE WHEN %(has_role)s OR s.id IS NULL THEN coalesce(nullif(r.role, ''), 'staff') ELSE s.role END AS role,
       s.role AS old_role,
       CASE WHEN %(has_wip)s OR s.id IS NULL THEN nullif(r.wip_limit, '')::integer ELSE s.wip_limit END AS wip_limit,
       s.wip_limit AS old_wip_limit,
       coalesce(nullif(r.availability, '')::availability_status, s.availability_status, 'available')
         AS availability_status,
       s.availability_status AS old_availability_status,
       CASE WHEN %(has_skills)s OR s.id IS NULL THEN coalesce(w.skills, '') ELSE coalesce(h.skills, '') END AS skills,
       coalesce(h.skills, '') AS old_skills,
       CASE WHEN %(has_skills)s OR s.id IS NULL THEN coalesce(w.skill_ids, '{}') ELSE s.skills END AS skill_ids,
       s.current_assignment_count AS load
FROM staff_import_rows r
LEFT JOIN staff_profiles s ON s.id = r.id::uuid
LEFT JOIN wanted w ON w.line = r.line
LEFT JOIN held h ON h.staff_id = s.id) x
"""

# What the import would do, as rows for the report.
CHANGES = """
SELECT i.line, i.id::text, c.field, c.old, c.new
FROM staff_import i
CROSS JOIN LATERAL (VALUES (1, 'unit', i.old_unit_id, i.unit_id), (2, 'full_name', i.old_full_name, i.full_name),
                           (3, 'role', i.old_role, i.role), (4, 'wip_limit', i.old_wip_limit::text, i.wip_limit::text),
                           (5, 'availability', i.old_availability_status::text, i.availability_status::text),
                           (6, 'skills', i.old_skills, i.skills)) c(position, field, old, new)
WHERE i.changed AND c.old IS DISTINCT FROM c.new
ORDER BY i.line, c.position
"""
ADDS = "SELECT line, id::text, full_name, unit_id FROM staff_import WHERE is_new ORDER BY line"
LEAVERS = """
SELECT s.id::text, s.full_name, s.unit_id, s.availability_status::text, s.current_assignment_count
FROM staff_profiles s WHERE NOT EXISTS (SELECT 1 FROM staff_import i WHERE i.id = s.id)
ORDER BY s.unit_id, s.full_name, s.id
"""
# People the import leaves holding more work than their new WIP limit allows (allowed: they
# take nothing new until below it).
OVER_LIMIT = """
SELECT i.line, i.id::text, i.load, coalesce(i.wip_limit, u.default_wip_limit)
FROM staff_import i JOIN organizational_units u ON u.id = i.unit_id
WHERE i.changed AND i.load > coalesce(i.wip_limit, u.default_wip_limit)
ORDER BY i.line
"""

# --- the merge -----------------------------------------------------------------------------

# As the leave policy takes them: every unit's lock exclusively (in-flight completions and
# arrivals finish first; new ones wait), then the staff tables EXCLUSIVE: plain reads go on,
# but nobody takes a staff row until the commit -- a row lock taken meanwhile and upgraded to
# a write would wait for this transaction while it waits for that row.
LOCK_UNITS = "SELECT lock_units(ARRAY(SELECT id FROM organizational_units))"
LOCK_TABLES = "LOCK TABLE staff_profiles, staff_skills IN EXCLUSIVE MODE"
OWNS_STAFF_TABLES = """
SELECT bool_and(pg_has_role(current_user, c.relowner, 'USAGE')) FROM pg_class c
WHERE c.oid IN ('staff_profiles'::regclass, 'staff_skills'::regclass)
"""
# The two row triggers that keep derived data (unit staff counts, the skills array) cost a
# statement per row; the merge keeps that data set-based instead, in the same transaction.
ROW_TRIGGERS = (("staff_profiles", "staff_unit_count_trigger"), ("staff_skills", "staff_skills_sync_trigger"))

# The counter (current_assignment_count), version and has_room are never set here: the
# engine's triggers keep version, updated_at and has_room.
MERGE = """
INSERT INTO staff_profiles AS s (id, unit_id, full_name, role, wip_limit, availability_status, skills)
SELECT i.id, i.unit_id, i.full_name, i.role, i.wip_limit, i.availability_status, i.skill_ids
FROM staff_import i WHERE i.is_new OR i.changed ORDER BY i.id
ON CONFLICT (id) DO UPDATE SET
  unit_id = EXCLUDED.unit_id, full_name = EXCLUDED.full_name, role = EXCLUDED.role, wip_limit = EXCLUDED.wip_limit,
  availability_status = EXCLUDED.availability_status, skills = EXCLUDED.skills,
  available_until = CASE WHEN EXCLUDED.availability_status = s.availability_status THEN s.available_until END;
DELETE FROM staff_skills k USING staff_import i
WHERE k.staff_id = i.id AND i.changed AND i.skills IS DISTINCT FROM i.old_skills;
INSERT INTO staff_skills (staff_id, skill_id, proficiency)
SELECT i.id, k.skill_id, k.proficiency
FROM staff_import i JOIN staff_import_skills k ON k.line = i.line
WHERE i.is_new OR (i.changed AND i.skills IS DISTINCT FROM i.old_skills);
"""
LEAVERS_OFFLINE = """
UPDATE staff_profiles s SET availability_status = 'offline', available_until = NULL
WHERE s.availability_status <> 'offline' AND NOT EXISTS (SELECT 1 FROM staff_import i WHERE i.id = s.id)
"""
UNIT_COUNTS = """
INSERT INTO unit_staff_counts AS c (unit_id, staff)
SELECT s.unit_id, count(*) FROM staff_profiles s GROUP BY s.unit_id
ON CONFLICT (unit_id) DO UPDATE SET staff = EXCLUDED.staff WHERE c.staff <> EXCLUDED.staff;
UPDATE unit_staff_counts c SET staff = 0
WHERE c.staff <> 0 AND NOT EXISTS (SELECT 1 FROM staff_profiles s WHERE s.unit_id = c.unit_id);
"""
# The engine's own follow-ups: the leave policy for people the roster puts on leave, and
# queued work for people with new room (only where work waits for their unit or above).
LEAVE = """
SELECT coalesce(sum((o ->> 'reassigned')::integer), 0), coalesce(sum((o ->> 'queued')::integer), 0),
       coalesce(sum((o ->> 'flagged_for_review')::integer), 0)
FROM (SELECT apply_leave_policy(i.id, 'on leave (staff import)', NULL) AS o
      FROM staff_import i
      WHERE i.changed AND i.availability_status = 'on_leave' AND i.old_availability_status <> 'on_leave'
      ORDER BY i.line) l
"""
QUEUE = """
SELECT coalesce(sum(process_queue_on_capacity_change(i.id)), 0)
FROM (SELECT i.id FROM staff_import i
      WHERE (i.is_new OR i.changed) AND i.availability_status = 'available'
        AND EXISTS (SELECT 1 FROM organizational_unit_tree t JOIN assignment_queue q ON q.target_unit_id = t.ancestor_id
                    WHERE t.unit_id = i.unit_id)
      ORDER BY i.line) i
"""
