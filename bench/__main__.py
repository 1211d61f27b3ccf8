"""``python -m bench`` (``make bench``): every benchmark, one run, tables of ratios.

    python -m bench                       # full sizes (about 10 minutes on 2 cores)
    python -m bench --quick               # CI sizes (about 2 minutes)
    python -m bench --only cold_start,package
    python -m bench --only seed           # against the seed's handlers on MariaDB (TEST_MYSQL_URL)
    python -m bench --stores sqlite,dynamodb,mysql,postgres   # mysql/postgres need TEST_*_URL
    python -m bench --write-docs          # also rewrite the measured section of docs/performance.md

Sections: cold_start, round_trips, latency, seed, server, package, cost. Nothing is written to the
repository unless ``--write-docs`` is given; ``--json FILE`` saves the raw figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import common
from .common import Table

DYNAMODB_LATENCY_SAMPLES = 100
SECTIONS = ("cold_start", "round_trips", "latency", "seed", "server", "package", "cost")
DOCS = common.ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"rounds": 3, "repeats": 3, "iterations": 30, "duplicates": 300, "first": 100, "seed": 40}
    return {"rounds": 9, "repeats": 10, "iterations": 300, "duplicates": 4000, "first": 1000, "seed": 160}


def _cold_start(rounds: int) -> tuple[Table, dict[str, Any]]:
    from . import cold_start  # noqa: PLC0415

    summary = cold_start.summarise(cold_start.measure(rounds, floors=True))
    rows = [[name, row["median_ms"], row["min_ms"], row["ratio"]] for name, row in summary.items()]
    table = Table(
        f"Cold start: import time of each Lambda handler ({rounds} fresh interpreters each, interleaved)",
        ["handler", "median ms", "min ms", "ratio to import boto3"],
        rows,
        note="module = the handler's module; first notification / deployed = plus what its first request "
        f"imports (the notification function's budget: {cold_start.BUDGET}x). floor = the libraries under "
        "the management function alone, none of our code: its cold import cannot go below them.",
    )
    return table, summary


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--stores", default="sqlite,dynamodb,mysql,postgres", help="stores to measure on")
    parser.add_argument("--arm64", action="store_true", help="package: resolve arm64 wheels with uv (PyPI)")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite the measured part of {DOCS.name}")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    sizes = _sizes(args.quick)
    kinds, notes = common.available_kinds([k.strip() for k in args.stores.split(",") if k.strip()])
    if "cost" in only:
        for needed in ("sqlite", "dynamodb"):
            if needed not in kinds:
                kinds.append(needed)
    tables: list[Table] = []
    raw: dict[str, Any] = {"sizes": sizes, "skipped": notes}
    started = time.monotonic()
    header = (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} sizes"
    )
    print(f"bench: {header}", flush=True)
    for note in notes:
        print(f"bench: left out {note}", flush=True)

    def emit(table: Table) -> None:
        tables.append(table)
        print("\n" + table.text(), flush=True)

    if "cold_start" in only:
        table, summary = _cold_start(sizes["rounds"])
        raw["cold_start"] = summary
        emit(table)
    if "package" in only:
        from . import package_size  # noqa: PLC0415

        with common.temp_dir() as scratch:
            package = package_size.build(Path(scratch), arm64=args.arm64)
            raw["package"] = {"zipped": package.zipped, "unzipped": package.unzipped, "files": package.files}
            emit(package_size.table(package))
    trips: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    need_stores = {"round_trips", "latency", "cost"} & set(only)
    if need_stores:
        from . import latency, round_trips  # noqa: PLC0415

        with common.temp_dir() as scratch, _maybe_moto("dynamodb" in kinds) as endpoint:
            for kind in kinds:
                try:
                    if {"round_trips", "cost"} & set(only):
                        with common.bench_store(kind, Path(scratch), endpoint) as store:
                            trips[kind] = round_trips.measure(store, sizes["repeats"])
                    if {"latency", "cost"} & set(only) and (kind == "sqlite" or "latency" in only):
                        # moto copies the whole table for every transaction item: past a few hundred
                        # deposits each call takes seconds, so DynamoDB gets fewer samples.
                        count = (
                            min(sizes["iterations"], DYNAMODB_LATENCY_SAMPLES)
                            if kind == "dynamodb"
                            else sizes["iterations"]
                        )
                        with common.bench_store(kind, Path(scratch), endpoint) as store:
                            timings[kind] = latency.measure(store, count)
                except Exception as exc:  # one store failing must not lose the others' figures
                    problem = f"{kind}: {type(exc).__name__}: {str(exc)[:300]}"
                    notes.append(problem)
                    print(f"bench: FAILED {problem}", file=sys.stderr, flush=True)
        if "round_trips" in only and trips:
            for table in round_trips.tables(trips):
                emit(table)
        if "latency" in only and timings:
            emit(latency.table(timings))
        raw["round_trips"] = {
            kind: {op: {"calls": dict(t.calls), "wru": t.wru, "rru": t.rru} for op, t in ops.items()}
            for kind, ops in trips.items()
        }
        raw["latency_ms"] = {
            kind: {name: {"p50": t.p(name, 50), "p99": t.p(name, 99)} for name in t.samples}
            for kind, t in timings.items()
        }
    if "seed" in only and not os.environ.get("TEST_MYSQL_URL"):
        notes.append(
            "seed: left out: no MariaDB (TEST_MYSQL_URL is not set; scripts/test-databases.sh start)"
        )
    elif "seed" in only:
        from . import seed_baseline  # noqa: PLC0415

        try:
            with common.temp_dir() as scratch, common.bench_store("mysql", Path(scratch)) as store:
                comparison = seed_baseline.measure(store, sizes["seed"])
        except Exception as exc:  # e.g. the server is not reachable
            notes.append(f"seed: left out: {type(exc).__name__}: {str(exc)[:300]}")
        else:
            raw["seed_ms"] = {
                side: {
                    op: {
                        "p50": comparison.p(side, op, 50),
                        "p99": comparison.p(side, op, 99),
                        "cpu_p50": comparison.cpu_p(side, op, 50),
                    }
                    for op in ops
                }
                for side, ops in comparison.samples.items()
            }
            emit(seed_baseline.table(comparison))
    if "server" in only:
        from . import server_throughput  # noqa: PLC0415

        with common.temp_dir() as scratch:
            loads = server_throughput.measure(Path(scratch), sizes["duplicates"], sizes["first"])
        raw["server"] = {load.name: load.rate for pair in loads for load in pair}
        emit(server_throughput.table(loads))
    if "cost" in only and ("sqlite" not in timings or "dynamodb" not in trips):
        notes.append("cost: left out (it needs the SQLite latency and the DynamoDB round trips)")
    elif "cost" in only:
        from . import cost  # noqa: PLC0415

        sqlite = timings["sqlite"]
        cpu = {
            "create deposit": sqlite.p("create transaction", 50) / 1000,
            "apply notification": sqlite.p("notification", 50) / 1000,
        }
        lines, per_request = cost.estimate(trips["dynamodb"], cpu)
        raw["cost_usd"] = {line.item: line.usd for line in lines}
        for table in cost.tables(lines, per_request):
            emit(table)
    elapsed = time.monotonic() - started
    for note in notes:
        print(f"bench: note: {note}", flush=True)
    print(f"\nbench: done in {elapsed:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    if args.write_docs:
        _write_docs(header, tables, notes)
    return 0


class _maybe_moto:  # noqa: N801 - used as a context manager
    """The moto endpoint when DynamoDB is measured, else None."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted
        self._context: Any = None

    def __enter__(self) -> str | None:
        if not self.wanted:
            return None
        self._context = common.moto_endpoint()
        return str(self._context.__enter__())

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def _write_docs(header: str, tables: list[Table], notes: list[str]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"bench: {DOCS} has no {BEGIN} ... {END} section; not written", file=sys.stderr)
        return
    body = "\n\n".join(
        [f"Measured {header} (`python -m bench --write-docs`).", *(t.markdown() for t in tables)]
    )
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    DOCS.write_text(f"{before}{BEGIN}\n{body}\n{END}{after}", encoding="utf-8")
    print(f"bench: wrote {DOCS}")


if __name__ == "__main__":
    sys.exit(main())
