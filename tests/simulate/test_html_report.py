"""The HTML report in a real headless browser: it renders, every chart is there, nothing fails
or is fetched (one self-contained file)."""

from __future__ import annotations

import pytest
from browser_support import open_page
from simulate_support import variant

from engine.simulate.report import render
from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db

CHARTS = 5           # queue depth, utilisation, wait, resolution, breaches by type x priority


def test_the_html_report_renders_both_policies_charts_without_errors(server_url, shipped, tmp_path):
    tight = variant(tmp_path, "proposed", {"units.yaml": [(r"wip_limit: \d+", "wip_limit: 2")]})
    result = simulate(server_url, [shipped, tight], WorkloadSpec(days=1, per_day=200), seed=3)
    page_file = tmp_path / "report.html"
    page_file.write_text(render(result, "html"))
    shot = tmp_path / "report.png"
    with open_page(page_file, screenshot=shot) as page:
        assert page.console_errors == []
        assert page.requests == []
        assert page.evaluate("document.title") == "rulesctl simulation"
        assert page.count("svg.chart") == 2 * CHARTS                       # baseline and proposed side by side
        assert page.texts("figcaption")[:2] == ["baseline", "proposed"]
        assert page.count("polyline") >= 2 * 2                              # a line per unit in each time chart
        assert page.count("rect.bar") == 2 * (2 * 12 + len(result.summary["policies"]["baseline"]["by_type_priority"]))
        widths = page.evaluate("[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().width)")
        assert all(w > 100 for w in widths)
        assert "breach rate" in page.evaluate("document.querySelector('table').innerText")
    assert shot.stat().st_size > 10_000
