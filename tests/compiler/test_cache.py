"""The user cache (engine/cache.py) keeps work that depends only on its inputs; what comes out
of it must equal what was computed, and an unwritable cache must change nothing."""

from __future__ import annotations

import pytest

from engine.policy import calendar_days

SPEC = {"country": "SA", "years": [2026, 2027]}


def test_public_holidays_from_the_cache_equal_a_fresh_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = calendar_days._expand(SPEC)
    assert calendar_days.expand_public_holidays(SPEC) == fresh          # computed, then kept
    kept = list((tmp_path / "rulesctl" / "holidays").iterdir())
    assert len(kept) == 1
    monkeypatch.setattr(calendar_days, "_expand", lambda spec: pytest.fail("expanded again"))
    assert calendar_days.expand_public_holidays(SPEC) == fresh          # read back, same dates and names


def test_another_request_is_not_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    both = calendar_days.expand_public_holidays(SPEC)
    one = calendar_days.expand_public_holidays({"country": "SA", "years": [2026]})
    assert one == [d for d in both if d[0].year == 2026] and len(one) < len(both)


def test_unknown_country_is_an_error_and_an_unwritable_cache_is_no_cache(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert calendar_days.expand_public_holidays(SPEC) == calendar_days._expand(SPEC)
    with pytest.raises(LookupError, match="no public-holiday calendar"):
        calendar_days.expand_public_holidays({"country": "XX", "years": [2026]})
