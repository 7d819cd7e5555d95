"""Two policies replayed on the same arrivals and staff: what the comparison must show."""

from __future__ import annotations

import json

import pytest
from simulate_support import assert_sound, variant

from engine.simulate.report import as_json
from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db

SHORT = WorkloadSpec(days=2, per_day=200)        # about 400 arrivals: seconds, not minutes


def test_the_same_seed_gives_the_same_json_and_another_seed_does_not(server_url, shipped):
    runs = [simulate(server_url, [shipped], WorkloadSpec(days=1, per_day=150), seed=seed) for seed in (5, 5, 6)]
    for run in runs:
        assert_sound(run)
    texts = []
    for run in runs:
        document = json.loads(as_json(run))
        assert set(document) == {"seed", "workload", "policies", "timings"}
        document.pop("timings")
        texts.append(json.dumps(document, sort_keys=True))
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
    assert runs[0].summary["policies"]["baseline"]["items"] > 100


def test_every_wip_limit_at_one_waits_longer_and_breaches_no_less(server_url, shipped, tmp_path):
    tight = variant(tmp_path, "proposed", {"units.yaml": [(r"wip_limit: \d+", "wip_limit: 1")]})
    result = simulate(server_url, [shipped, tight], SHORT, seed=11)
    assert_sound(result)
    base, new = result.summary["policies"]["baseline"], result.summary["policies"]["proposed"]
    assert new["items"] == base["items"]
    assert new["wait_minutes"]["p95"] > base["wait_minutes"]["p95"]
    assert new["wait_minutes"]["max"] > base["wait_minutes"]["max"]
    assert new["breached"] >= base["breached"]
    assert result.summary["delta"]["breached"] == new["breached"] - base["breached"]
    assert result.summary["delta"]["wait_minutes"]["p95"] > 0


def test_a_rule_sending_a_type_to_an_empty_unit_leaves_those_items_queued(server_url, shipped, tmp_path):
    # the data-request rule replaced by one for Human Resources, where nobody works
    to_hr = variant(tmp_path, "proposed", {"assignment_rules.yaml": [
        (r"id: rule-data-requests\n", "id: rule-data-requests-to-hr\n"),
        (r"unit: unit-data-requests\n    when_no_capacity: overflow_to_parent", "unit: unit-hr")]})
    result = simulate(server_url, [shipped, to_hr], SHORT, seed=11)
    assert_sound(result)
    base, new = result.summary["policies"]["baseline"], result.summary["policies"]["proposed"]
    data_requests = sum(v["items"] for k, v in base["by_type_priority"].items() if k.startswith("data_request/"))
    assert data_requests > 20
    assert "unit-hr" not in base["by_unit"]
    assert new["by_unit"]["unit-hr"]["items"] == data_requests
    assert new["by_unit"]["unit-hr"]["wait_minutes"] == {"p50": None, "p95": None}
    assert new["queued_at_end"] == base["queued_at_end"] + data_requests
    assert new["assigned"] == base["assigned"] - data_requests
