"""Views: replaced in place (CREATE OR REPLACE VIEW) when their definition changes."""

from __future__ import annotations

from engine.migrate.kinds.base import Kind


class View(Kind):
    name = "view"
    rank, drop_rank = 7, 7
    query = "views.sql"
    reported = True
