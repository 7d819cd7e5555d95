"""Every generated PL/pgSQL function passes plpgsql_check (Debian's postgresql-15-plpgsql-check):
no errors and no warnings, trigger functions checked against the table they fire on."""

from __future__ import annotations

import psycopg
import pytest

from engine.compiler import catalog

pytestmark = pytest.mark.db

# Each trigger function with a table it fires on (the version/updated_at ones fire on several).
TRIGGER_TABLES = {function: table for _, table, function in catalog.RUNTIME_TRIGGERS} | {
    "increment_version_column": "staff_profiles",
    "update_updated_at_column": "staff_profiles",
}


def test_generated_functions_pass_plpgsql_check(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        functions = conn.execute("""
            SELECT p.oid, p.proname, p.prorettype = 'trigger'::regtype
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'plpgsql'
            ORDER BY p.proname""").fetchall()
        assert len(functions) >= 25
        findings = []
        for oid, name, is_trigger in functions:
            relid = TRIGGER_TABLES[name] if is_trigger else 0
            rows = conn.execute("SELECT level, lineno, message, detail"
                                " FROM plpgsql_check_function_tb(%s, %s::regclass)", (oid, relid)).fetchall()
            findings += [(name, *row) for row in rows]
    assert findings == []
