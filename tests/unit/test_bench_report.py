"""`make bench`'s combined report: every benchmark's saved figures become rows of one shape,
targets are judged in the right direction, and a benchmark that did not run is named."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import collect, table


def write(directory: Path, name: str, results: dict[str, object]) -> None:
    (directory / f"{name}.json").write_text(json.dumps(results))


def test_rows_judge_each_target_in_its_direction_and_name_what_did_not_run(tmp_path: Path) -> None:
    write(tmp_path, "lifecycle", {"cases": [
        {"name": "order lifecycle", "concurrency": 1, "product_per_s": 8.0, "baseline_per_s": 10.0, "ratio": 0.8},
        {"name": "order lifecycle", "concurrency": 8, "product_per_s": 7.0, "baseline_per_s": 10.0, "ratio": 0.7},
    ]})  # fmt: skip
    write(tmp_path, "reads", {"levels": {"1": {
        "api": {"p50_ms": 2.6, "p99_ms": 9.0, "rps": 300.0},
        "baseline": {"p50_ms": 2.0, "p99_ms": 5.0, "rps": 400.0},
        "p50_ratio": 1.31, "throughput_ratio": 0.75,
    }}})  # fmt: skip
    write(tmp_path, "lists", {"target_p99_ms": 50.0, "cases": {"orders": {"p50_ms": 9.0, "p99_ms": 50.0}}})
    write(tmp_path, "streams", {
        "streams": 1000, "api_cpu_idle_streams": 0.034, "fanout_p99_ms": 420.0, "memory_per_stream_kib": 58.5,
    })  # fmt: skip

    rows, missing = collect(tmp_path)

    assert missing == ["money_flows", "ledger"]
    met = {(row.bench, row.case, row.concurrency): row.met for row in rows}
    assert met[("lifecycle", "order lifecycle", 1)] is True  # >= 0.8
    assert met[("lifecycle", "order lifecycle", 8)] is False
    assert met[("reads", "GET /orders/{id} p50", 1)] is False  # 1.31: the ratio must stay at or under 1.3...
    assert met[("reads", "GET /orders/{id} throughput", 1)] is True
    assert met[("lists", "orders p99", None)] is False  # ...a budget must be under its figure
    assert met[("streams", "fan-out p99 to 1000 streams", None)] is True
    assert met[("streams", "memory per stream", None)] is None  # measured, no target
    p50 = next(row for row in rows if row.case == "GET /orders/{id} p50")
    assert p50.plotted_ratio == (1 / 1.31, 1 / 1.3)  # drawn as baseline / product, higher is better
    printed = table(rows, missing)
    assert "not run (no results saved): money_flows, ledger" in printed
    assert "NO" in printed and "yes" in printed
