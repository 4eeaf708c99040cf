"""The benchmark report's logic on made-up results: ratios, verdicts and the tables (no servers).

No timing is measured or asserted here: the figures are invented, and what is checked is how
the report reads, compares and prints them.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from benchmarks import _cpu, _goals, _report, _stats


def _run(tps: float, cpu_ms: float) -> dict[str, Any]:
    return {
        "tasks": 5000,
        "completed": 5000,
        "lost": 0,
        "tasks_per_s": tps,
        "cpu_ms_per_task": cpu_ms,
    }


def _repeated(tps: list[float], cpu_ms: float) -> dict[str, Any]:
    return {
        "runs": [_run(t, cpu_ms) for t in tps],
        "tasks": 5000,
        "tasks_per_s": _stats.median(tps),
        "cpu_ms_per_task": cpu_ms,
        "completed": 5000 * len(tps),
        "lost": 0,
        "errors": {},
    }


def _rt(p50: float, p99: float) -> dict[str, Any]:
    return {"n": 500, "p50_ms": p50, "p99_ms": p99, "mean_ms": p50, "p90_ms": p99}


def _memory(rss: float) -> dict[str, Any]:
    return {"rss_mib": rss, "pss_mib": rss, "hwm_mib": rss, "processes": [{"pid": 1}]}


def _mode() -> dict[str, Any]:
    return {
        "sdk_submit": _repeated([2500.0, 2400.0, 2600.0], 0.7),
        "sdk_map": _repeated([9000.0, 7000.0, 8000.0], 0.3),
        "sdk_round_trip": _rt(1.0, 1.8),
        "rest_throughput": {"tasks_per_s": 440.0, "completed": 2000, "lost": 0},
        "rest_round_trip": _rt(3.5, 6.0),
        "makespan": {"seconds": 2.05, "ideal_seconds": 2.0},
        "memory_idle": {
            "gateway": _memory(60.0),
            "dispatcher": _memory(50.0),
            "worker": _memory(90.0),
            "rest": _memory(64.0),
        },
    }


def _results() -> dict[str, Any]:
    return {
        "started": "20261201-101010",
        "machine": {
            "cpus": 2,
            "cpu_model": "test CPU",
            "cpus_usable": 2,
            "memory_mib": 24000,
            "os": "Linux",
            "python": "3.11.7",
            "redis_server": "Redis server v=6.2.14 sha=0",
            "git_commit": "abc1234",
            "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [3.0, 2.0, 1.5],
            "load_samples": [
                {"section": "floors", "load_average": [1.0, 1.0, 1.0]},
                {"section": "push", "load_average": [3.25, 2.0, 1.5]},
            ],
        },
        "config": {"quick": False, "sizes": {"repetitions": 3, "sdk_tasks": 5000}, "env": {}},
        "floors": {
            "ray": {
                "version": "2.60.0",
                "processes": 2,
                "throughput": _repeated([2000.0, 1900.0, 2100.0], 0.75),
                "round_trip": _rt(1.25, 2.5),
                "makespan": {"seconds": 2.06},
                "memory": {"idle": _memory(700.0)},
            },
            "celery": {
                "version": "5.7.0",
                "processes": 2,
                "throughput": _repeated([1000.0, 1100.0, 1200.0], 1.5),
                "round_trip": _rt(2.0, 4.0),
                "makespan": {"seconds": 2.05},
                "memory": {"idle": _memory(144.0)},
            },
            "grpc": {
                "throughput": {
                    "tasks_per_s": 1600.0,
                    "cpu_us_per_task": {"server": 600.0, "client": 400.0},
                },
                "batch_throughput": {"tasks_per_s": 3600.0, "cpu_us_per_task": {"server": 300.0}},
                "round_trip_watch": _rt(1.5, 2.5),
                "round_trip_get_result": _rt(1.5, 2.5),
                "memory": _memory(40.0),
            },
            "fastapi": {
                "clients": {"tasks_per_s": 500.0},
                "batch": {"tasks_per_s": 1000.0},
                "round_trip": _rt(2.75, 5.0),
                "memory": {"idle": _memory(50.0)},
            },
            "pool": {
                "processes": 2,
                "apply_async": {"tasks_per_s": 20000.0},
                "map": {"tasks_per_s": 200000.0},
                "round_trip": _rt(0.25, 0.5),
                "makespan": {"seconds": 2.01},
            },
        },
        "modes": {"push": _mode()},
        "scaling": {
            "ideal_sleep_seconds": 0.4,
            "pool": {
                "1": {
                    "noop": {"tasks": 250, "tasks_per_s": 9000.0},
                    "sleep": {"tasks": 8, "seconds": 0.41, "efficiency": 0.98},
                },
                "2": {
                    "noop": {"tasks": 500, "tasks_per_s": 18000.0},
                    "sleep": {"tasks": 16, "seconds": 0.42, "efficiency": 0.95},
                },
            },
            "modes": {
                "push": {
                    "1": {
                        "noop": {"tasks": 250, "tasks_per_s": 500.0},
                        "sleep": {"tasks": 8, "seconds": 0.5, "efficiency": 0.8},
                    },
                    "2": {
                        "noop": {"tasks": 500, "tasks_per_s": 800.0},
                        "sleep": {"tasks": 16, "seconds": 0.44, "efficiency": 0.9},
                    },
                }
            },
        },
        "errors": [],
    }


def _row(rows: list[dict[str, Any]], key: str, mode: str = "push") -> dict[str, Any]:
    (row,) = [r for r in rows if r["key"] == key and r["mode"] == mode]
    return row


def test_every_figure_of_the_issue_has_a_row_per_mode() -> None:
    results = _results()
    results["modes"]["local"] = _mode()
    rows = _goals.rows(results)
    keys = {goal.key for goal in _goals.GOALS}
    assert {(r["key"], r["mode"]) for r in rows} == {
        (k, m) for k in keys for m in ("push", "local")
    }
    assert {
        "sdk_submit",
        "sdk_map",
        "cpu_per_task",
        "sdk_rt_p50",
        "sdk_rt_p99",
        "rest_clients",
        "rest_rt_p50",
        "makespan",
        "idle_memory",
        "scaling_sleep",
    } <= keys


def test_a_failed_mode_has_no_rows() -> None:
    results = _results()
    results["modes"]["pull"] = {"error": "mode pull failed: RuntimeError: boom"}
    assert {r["mode"] for r in _goals.rows(results)} == {"push"}


def test_throughput_is_judged_against_ray_and_celery_of_the_same_run() -> None:
    row = _row(_goals.rows(_results()), "sdk_submit")
    assert row["value"] == 2500.0  # the median of the three repetitions
    assert row["ratio_ray"] == pytest.approx(2500.0 / 2000.0)
    assert row["ratio_celery"] == pytest.approx(2500.0 / 1100.0)
    assert dict(row["ratio_floors"])["gRPC floor"] == pytest.approx(2500.0 / 1600.0)
    assert row["met"] is True  # 1.25x Ray (>= 1.2) and 2.27x Celery (>= 2)

    results = _results()
    results["floors"]["celery"]["throughput"]["tasks_per_s"] = 1300.0  # 2500 < 2 x 1300
    assert _row(_goals.rows(results), "sdk_submit")["met"] is False


def test_map_needs_four_times_ray() -> None:
    row = _row(_goals.rows(_results()), "sdk_map")
    assert row["value"] == 8000.0
    assert row["met"] is True  # exactly 4x Ray's 2,000
    results = _results()
    results["floors"]["ray"]["throughput"]["tasks_per_s"] = 2001.0
    assert _row(_goals.rows(results), "sdk_map")["met"] is False


def test_a_missing_reference_gives_no_verdict_but_the_figure_stays() -> None:
    results = _results()
    results["floors"]["ray"] = {"skipped": "skipped: ray is not installed"}
    rows = _goals.rows(results)
    row = _row(rows, "sdk_submit")
    assert row["value"] == 2500.0
    assert row["ratio_ray"] is None and row["met"] is None
    assert _goals.verdict(row) == "n/a"
    assert _row(rows, "sdk_rt_p50")["met"] is None
    assert "n/a" in _goals.tally(rows)


def test_cpu_round_trip_rest_makespan_and_memory_verdicts() -> None:
    rows = _goals.rows(_results())
    cpu = _row(rows, "cpu_per_task")
    assert cpu["met"] is True  # 0.7 <= 0.8
    assert dict(cpu["floors"])["gRPC floor"] == pytest.approx(1.0)  # (600 + 400) us
    assert cpu["ratio_ray"] == pytest.approx(0.7 / 0.75)
    assert _row(rows, "sdk_rt_p50")["met"] is True  # 1.0 <= Ray's 1.25
    assert _row(rows, "sdk_rt_p99")["met"] is True  # 1.8 <= 2 x its own p50 1.0
    assert _row(rows, "rest_clients")["met"] is False  # 440 < 0.9 x 500
    assert _row(rows, "rest_rt_p50")["met"] is True  # 3.5 <= 2.75 + 1
    assert _row(rows, "makespan")["met"] is True  # 2.05 <= 1.03 x 2.0
    memory = _row(rows, "idle_memory")
    assert memory["value"] == pytest.approx(200.0)  # gateway + dispatcher + worker, not rest
    assert memory["met"] is True
    assert memory["ratio_ray"] == pytest.approx(200.0 / 700.0)

    results = _results()
    results["modes"]["push"]["sdk_round_trip"] = _rt(1.0, 2.5)
    results["modes"]["push"]["makespan"]["seconds"] = 2.07
    results["modes"]["push"]["rest_round_trip"] = _rt(3.8, 6.0)
    rows = _goals.rows(results)
    assert _row(rows, "sdk_rt_p99")["met"] is False
    assert _row(rows, "makespan")["met"] is False
    assert _row(rows, "rest_rt_p50")["met"] is False


def test_weak_scaling_rows_compare_with_the_pool_study() -> None:
    rows = _goals.rows(_results())
    sleep = _row(rows, "scaling_sleep")
    assert sleep["value"] == pytest.approx(0.8)  # the worst size
    assert sleep["floors"] == [("Pool", pytest.approx(0.95))]
    assert sleep["judged"] is False and _goals.verdict(sleep) == ""
    assert _row(rows, "scaling_noop")["value"] == pytest.approx(800.0)  # the largest size


def test_missing_figures_print_as_n_a() -> None:
    results = _results()
    del results["modes"]["push"]["sdk_map"]
    row = _row(_goals.rows(results), "sdk_map")
    assert row["value"] is None and row["met"] is None
    assert _goals.verdict(row) == "n/a"


def test_the_table_has_the_issue_s_columns_and_one_line_per_row() -> None:
    rows = _goals.rows(_results())
    lines = _goals.table(rows).splitlines()
    assert lines[0].startswith("| Figure | Target | Measured | x Ray")
    assert "x Celery" in lines[0] and "x floor" in lines[0] and lines[0].endswith("| Met |")
    assert len(lines) == 2 + len(rows)
    submit = next(line for line in lines if "submit() x5,000" in line)
    cells = [c.strip() for c in submit.strip("|").split("|")]
    assert cells[1] == ">= 1.2x Ray and >= 2x Celery"
    assert cells[2] == "2,500"
    assert cells[3] == "1.25x (2,000)"
    assert cells[4] == "2.27x (1,100)"
    assert "gRPC floor 1.56x (1,600)" in cells[5]
    assert cells[6] == "yes"
    rest = next(line for line in lines if line.startswith("| REST: 16 clients"))
    assert rest.rstrip().endswith("| **NO** |")


def test_ratio_and_number_formatting() -> None:
    assert _goals.ratio(3.0, 2.0) == 1.5
    assert _goals.ratio(None, 2.0) is None
    assert _goals.ratio(1.0, 0.0) is None
    assert _goals.times(0.05) == "0.050x"
    assert _goals.times(1.234) == "1.23x"
    assert _goals.number(None, "ms") == "n/a"
    assert _goals.number(12345.6, "tasks/s") == "12,346"


def test_median_cpu_and_repetitions() -> None:
    assert _stats.median([3.0, 1.0, 2.0]) == 2.0
    assert _stats.median([math.nan, 4.0]) == 4.0
    assert math.isnan(_stats.median([]))
    cpu = {"cpu_seconds": {"gateway": 1.0, "dispatcher": 0.5, "client": 0.5}}
    assert _cpu.total_ms_per_task(cpu, 1000) == pytest.approx(2.0)
    assert math.isnan(_cpu.total_ms_per_task(cpu, 0))


def test_the_whole_report_renders_with_the_issue_table_first() -> None:
    text = _report.markdown(_results())
    assert "Load average (1 min) as each section started: floors 1.00, push 3.25" in text
    issue = text.index("## Issue 11")
    assert issue < text.index("## Issue 6 targets")
    assert "| Figure | Target | Measured | x Ray" in text
    assert "Ray 2.60.0, num_cpus=2" in text and "2,000 (median of 2,000, 1,900, 2,100)" in text
    assert "push: SDK submit() + result() | 2,500, 2,400, 2,600" in text


def test_the_report_survives_missing_sections() -> None:
    results = copy.deepcopy(_results())
    results["floors"] = {"celery": {"error": "Celery comparison failed: boom"}}
    results["modes"] = {"push": {"error": "mode push failed: boom"}}
    del results["scaling"]
    text = _report.markdown(results)
    assert "## Issue 11" in text
    assert "Celery comparison failed: boom" in text


def test_rest_figures_are_judged_against_the_floor_rerun_beside_the_mode() -> None:
    results = _results()
    results["modes"]["push"]["fastapi_beside"] = {
        "clients": {"tasks_per_s": 400.0},
        "round_trip": _rt(2.25, 4.0),
    }
    rows = _goals.rows(results)
    clients = _row(rows, "rest_clients")
    assert clients["floors"] == [("FastAPI floor", 400.0), ("FastAPI floor at start", 500.0)]
    assert clients["met"] is True  # 440 >= 0.9 x 400 (it was not against the start's 500)
    assert dict(clients["ratio_floors"])["FastAPI floor"] == pytest.approx(1.1)
    round_trip = _row(rows, "rest_rt_p50")
    assert round_trip["met"] is False  # 3.5 > 2.25 + 1 (the start's 2.75 + 1 would pass)
    line = next(x for x in _goals.table(rows).splitlines() if x.startswith("| REST: 16"))
    assert "FastAPI floor 1.10x (400); FastAPI floor at start 0.88x (500)" in line


def test_tiny_ratios_keep_two_significant_digits() -> None:
    assert _goals.times(0.0003123) == "0.00031x"
    assert _goals.times(0.0123) == "0.012x"
