"""The bench report flags rows measured while other processes loaded the machine."""
from __future__ import annotations

import time

from bench.run import BenchConfig, _busy_cpu_seconds, render_markdown


def test_busy_cpu_seconds_grows_while_this_process_computes() -> None:
    before = _busy_cpu_seconds()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert _busy_cpu_seconds() - before >= 0.1


def test_markdown_names_the_scenarios_measured_under_outside_load() -> None:
    machine = {"date": "2026-11-24T00:00:00Z", "cpu_model": "x", "cores": 2, "usable_cores": 2,
               "python": "3.11", "pinning": "none"}
    scenarios = {"bare_hop": {"rps": 4000.0, "cpu_us_per_req": 160.0, "errors": 0, "other_load_pct": 2.0},
                 "casemate_core": {"rps": 2000.0, "cpu_us_per_req": 380.0, "errors": 0, "other_load_pct": 31.5}}
    text = render_markdown({"machine": machine, "scenarios": scenarios, "ratios": {}}, BenchConfig())
    assert "took 10 % of it or more during casemate_core (" in text
    assert "| casemate_core | 2000 |" in text and "| 31.5 |" in text
