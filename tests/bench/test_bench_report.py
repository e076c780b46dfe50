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


def test_rounds_combine_into_cpu_over_all_requests_and_throughput_over_all_time() -> None:
    from bench.run import combine_rounds

    def part(requests: int, seconds: float, cpu: float, p50: float, other: float) -> dict[str, object]:
        return {"rps": requests / seconds, "requests": requests, "errors": 0, "duration_s": seconds,
                "statuses": {"200": requests}, "cpu_us_per_req": cpu, "upstream_cpu_us_per_req": 100.0,
                "p50_ms": p50, "p90_ms": p50, "p99_ms": p50 * 2, "mean_ms": p50, "other_load_pct": other}

    combined = combine_rounds([part(3000, 1.0, 200.0, 5.0, 1.0), part(1000, 1.0, 400.0, 9.0, 12.0),
                               part(2000, 1.0, 300.0, 6.0, 0.5)])
    assert combined["requests"] == 6000 and combined["statuses"] == {"200": 6000}
    assert combined["rps"] == 2000.0                     # 6000 requests in 3 s, not the mean of the rates
    assert combined["cpu_us_per_req"] == round((3000 * 200 + 1000 * 400 + 2000 * 300) / 6000, 1)
    assert combined["p50_ms"] == 6.0                     # the median round
    assert combined["other_load_pct"] == 12.0            # the worst round
    assert combined["rounds_cpu_us_per_req"] == [200.0, 400.0, 300.0]


def test_a_single_round_is_reported_as_measured() -> None:
    from bench.run import combine_rounds

    one = {"rps": 10.0, "requests": 10, "errors": 0, "duration_s": 1.0, "cpu_us_per_req": 5.0}
    assert combine_rounds([one]) == one
