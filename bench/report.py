"""One table, one JSON and one plot for every benchmark of `make bench` (issue #17).

Each benchmark saves its own figures in `bench/results/<name>.json`; this reads them all,
turns each into rows of the same shape (what was measured, at which concurrency, the product's
figure, the baseline's or the budget, and whether the target holds), prints the table, saves
`bench/results/summary.json` and draws `bench/results/ratios.png`: ratios against concurrency
(oriented so that higher is better) and, for the targets without a baseline, the share of the
budget used. A benchmark that has not run is listed as such, never guessed.

Run: `make bench` runs it last (or `python bench/report.py` over the saved results).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results_file import RESULTS_DIR, save

# the benchmarks `make bench` runs, in its order
BENCHES = ("lifecycle", "money_flows", "reads", "ledger", "lists", "streams")


@dataclass(frozen=True)
class Row:
    item: int  # issue #17's numbered deliverable
    bench: str
    case: str
    concurrency: int | None
    product: float
    baseline: float | None  # None: the target is an absolute budget, not a ratio
    unit: str
    value: float  # what the target is compared with: a ratio, or the product's figure
    target: float | None  # None: measured and reported, no target set
    higher_is_better: bool

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.value >= self.target
        # the ratio targets include their bound (p50 <= 1.3x); its budgets do not (p99 < 50 ms)
        return self.value <= self.target if self.baseline is not None else self.value < self.target

    @property
    def plotted_ratio(self) -> tuple[float, float | None] | None:
        """(ratio, target) with higher better, for rows that compare with a baseline."""
        if self.baseline is None or self.concurrency is None:
            return None
        if self.higher_is_better:
            return self.value, self.target
        return 1 / self.value, (1 / self.target if self.target else None)


def _per_second_cases(bench: str, item: int, target: float | None) -> Callable[[dict[str, Any]], Iterator[Row]]:
    def rows(results: dict[str, Any]) -> Iterator[Row]:
        for case in results["cases"]:
            yield Row(
                item,
                bench,
                case["name"],
                int(case["concurrency"]),
                case["product_per_s"],
                case["baseline_per_s"],
                "per s",
                case["ratio"],
                target,
                True,
            )
            if "baseline_same_shape_per_s" in case:  # a second baseline: the product's own shape, no-op
                yield Row(
                    item, bench, f"{case['name']} vs its own shape", int(case["concurrency"]), case["product_per_s"],
                    case["baseline_same_shape_per_s"], "per s", case["ratio_same_shape"], None, True,
                )  # fmt: skip

    return rows


def _reads(results: dict[str, Any]) -> Iterator[Row]:
    for concurrency, level in results["levels"].items():
        api, base = level["api"], level["baseline"]
        yield Row(
            2, "reads", "GET /orders/{id} p50", int(concurrency), api["p50_ms"], base["p50_ms"], "ms",
            level["p50_ratio"], 1.3, False,
        )  # fmt: skip
        yield Row(
            2, "reads", "GET /orders/{id} throughput", int(concurrency), api["rps"], base["rps"], "per s",
            level["throughput_ratio"], 0.7, True,
        )  # fmt: skip


def _ledger(results: dict[str, Any]) -> Iterator[Row]:
    for concurrency, level in results["levels"].items():
        yield Row(
            3, "ledger", "effects vs pgbench update", int(concurrency), level["effects_per_second"],
            level["pgbench_tps"], "per s", level["ratio"], 0.5, True,
        )  # fmt: skip


def _lists(results: dict[str, Any]) -> Iterator[Row]:
    target = float(results.get("target_p99_ms", 50.0))
    for name, case in results["cases"].items():
        yield Row(4, "lists", f"{name} p99", None, case["p99_ms"], None, "ms", case["p99_ms"], target, False)


def _streams(results: dict[str, Any]) -> Iterator[Row]:
    targets = results.get("targets", {})
    count = results["streams"]
    idle = results["api_cpu_idle_streams"]
    fanout = results["fanout_p99_ms"]
    memory = results["memory_per_stream_kib"]
    yield Row(5, "streams", f"{count} idle streams, CPU share of a core", None, idle, None, "core", idle,
              targets.get("idle_cpu", 0.05), False)  # fmt: skip
    yield Row(5, "streams", f"fan-out p99 to {count} streams", None, fanout, None, "ms", fanout,
              targets.get("fanout_p99_ms", 500.0), False)  # fmt: skip
    yield Row(5, "streams", "memory per stream", None, memory, None, "KiB", memory, None, False)


READERS: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "lifecycle": _per_second_cases("lifecycle", 1, 0.8),
    # the issue sets no figure for withdrawals and top-ups: measured against the same baseline shape
    "money_flows": _per_second_cases("money_flows", 6, None),
    "reads": _reads,
    "ledger": _ledger,
    "lists": _lists,
    "streams": _streams,
}


def collect(results_dir: Path = RESULTS_DIR) -> tuple[list[Row], list[str]]:
    """The rows of every saved benchmark, and the names of those with no results."""
    rows: list[Row] = []
    missing: list[str] = []
    for bench in BENCHES:
        path = results_dir / f"{bench}.json"
        if not path.exists():
            missing.append(bench)
            continue
        rows.extend(READERS[bench](json.loads(path.read_text())))
    return rows, missing


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "core":
        return f"{100 * value:.1f} %"
    return f"{value:,.2f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def table(rows: list[Row], missing: list[str]) -> str:
    header = ("item", "case", "c", "product", "baseline", "ratio/value", "target", "met")
    lines = [header]
    for row in rows:
        is_ratio = row.baseline is not None
        shown = f"{row.value:.2f}" if is_ratio else _figure(row.value, row.unit)
        target = "-" if row.target is None else ("≥ " if row.higher_is_better else "< " if not is_ratio else "≤ ")
        if row.target is not None:
            target += f"{row.target:g}" if is_ratio else _figure(row.target, row.unit)
        met = {True: "yes", False: "NO", None: "-"}[row.met]
        lines.append((
            str(row.item), f"{row.bench}: {row.case}", "-" if row.concurrency is None else str(row.concurrency),
            _figure(row.product, row.unit), _figure(row.baseline, row.unit), shown, target, met,
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)
    if missing:
        text += f"\nnot run (no results saved): {', '.join(missing)}"
    return text


def plot(rows: list[Row], path: Path) -> Path:
    """Ratios against concurrency (left) and the share of each absolute budget used (right)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, (ratios, budgets) = plt.subplots(1, 2, figsize=(14, 6), width_ratios=(3, 2))
    series: dict[str, list[tuple[int, float, float | None]]] = {}
    for row in rows:
        ratio = row.plotted_ratio
        if ratio is not None and row.concurrency is not None:
            # a lower-is-better ratio is drawn inverted: baseline / product
            name = f"{row.bench}: {row.case}" + ("" if row.higher_is_better else " (baseline / product)")
            series.setdefault(name, []).append((row.concurrency, *ratio))
    for name, points in sorted(series.items()):
        points.sort()
        (line,) = ratios.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        target = points[0][2]
        if target is not None:
            ratios.axhline(target, color=line.get_color(), linestyle="--", linewidth=0.8)
    ratios.set_xscale("log", base=2)
    levels = sorted({point[0] for points in series.values() for point in points})
    ratios.set_xticks(levels, [str(level) for level in levels])  # the concurrencies measured
    ratios.minorticks_off()
    ratios.set_xlabel("concurrency")
    ratios.set_ylabel("product / baseline (higher is better; dashed: target)")
    ratios.set_ylim(bottom=0)
    ratios.legend(fontsize="small")
    ratios.grid(True, alpha=0.3)
    budgeted = [row for row in rows if row.baseline is None and row.target]
    names = [f"{row.bench}: {row.case}" for row in budgeted]
    shares = [row.value / row.target for row in budgeted if row.target]
    budgets.barh(names, shares, color=["tab:green" if row.met else "tab:red" for row in budgeted])
    budgets.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
    budgets.set_xlabel("share of the budget used (< 1 meets the target)")
    budgets.tick_params(axis="y", labelsize="x-small")
    budgets.invert_yaxis()
    figure.suptitle(f"make bench, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> dict[str, Any]:
    rows, missing = collect()
    print(table(rows, missing))
    summary = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": [asdict(row) | {"met": row.met} for row in rows],
        "not_run": missing,
    }
    save("summary", summary)
    if rows:
        print(f"saved {plot(rows, RESULTS_DIR / 'ratios.png')}")
    return summary


if __name__ == "__main__":
    main()
