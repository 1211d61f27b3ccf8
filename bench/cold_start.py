"""Cold import time of every Lambda handler, as a ratio of a bare ``import boto3`` measured in the same run.

Each sample is a fresh interpreter that times its own imports (interpreter start-up excluded); the
targets are interleaved round by round so machine noise hits them alike, and medians are compared.
Absolute milliseconds differ between machines and runs: read the ratios.

Figures per handler:

- ``module``: importing the module the template names (what Lambda's init phase does);
- ``deployed``: that plus the DynamoDB store adapter (and so boto3), which the function loads on its
  first request with the template's ``STORE_URL=dynamodb://...``;
- for the notification function, ``first notification``: the module plus *everything* its first
  request imports (``FIRST_NOTIFICATION``: the store adapter, and what creating the first boto3
  client loads). This is the honest cold import it pays, and the headline.
  ``tests/unit/api/test_lean_imports.py`` handles real first notifications (paid with the
  QueryTradeInfo cross-check, ATM code issued, forged) in fresh interpreters and fails if one imports
  a module this list leaves out, so the figure cannot silently drift from what the function does.

Not counted (not imports): creating the boto3 clients on the first request, which loads botocore's
JSON service models (~80 ms for the DynamoDB client here, paid by any boto3 function alike), and the
calls themselves.

The notification function's budget is ``first notification`` <= 1.15 x ``import boto3``; ``--check``
exits 1 when it is exceeded.

``--floors`` adds the libraries under the management function, alone (``FLOORS``): the part of its
cold import that no change to ecpay_lambda's own modules can remove.

``--cpu`` times each sample's CPU instead of its wall clock: on a machine busy with other work, wall
time mostly measures waiting for a core.

    python bench/cold_start.py [--rounds 15] [--json] [--check] [--breakdown] [--floors] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1.15
BUDGET_TARGET = "callbacks (first notification)"
STORE = "ecpay_lambda.store.dynamodb"
# What the notification function's first request imports beyond its handler module (checked by
# tests/unit/api/test_lean_imports.py against real first notifications):
FIRST_NOTIFICATION: tuple[str, ...] = (
    STORE,  # open_store("dynamodb://..."), with ecpay_lambda.store and .dynamodb_items
    # Loaded by creating the first boto3 client (the endpoint host goes through the idna codec):
    # botocore's doing, which any boto3 function pays alike; counted anyway, so the figure errs on
    # the heavy side.
    "encodings.idna",
)

# What a management function's first hot request imports beyond its handler module (checked the same
# way): the lean path (api/fast/) serves it without Powertools' resolver or pydantic, which only a
# request it hands on (a refusal, a rare route, /docs) imports.
FIRST_MANAGEMENT_REQUEST: tuple[str, ...] = (STORE, "encodings.idna")
MANAGEMENT_TARGET = "handlers (first request)"
MANAGEMENT_BUDGET = 1.3

# name -> modules imported, in order, by one sample
TARGETS: dict[str, tuple[str, ...]] = {
    "import boto3": ("boto3",),
    "callbacks (module)": ("ecpay_lambda.api.ecpay_callbacks",),
    BUDGET_TARGET: ("ecpay_lambda.api.ecpay_callbacks", *FIRST_NOTIFICATION),
    "scheduled (module)": ("ecpay_lambda.api.scheduled",),
    "scheduled (deployed)": ("ecpay_lambda.api.scheduled", STORE),
    "handlers (module)": ("ecpay_lambda.api.handlers",),
    "handlers (deployed)": ("ecpay_lambda.api.handlers", STORE),
    MANAGEMENT_TARGET: ("ecpay_lambda.api.handlers", *FIRST_MANAGEMENT_REQUEST),
}


# The floor each library sets under the management function, measured the same way (fresh interpreters,
# ratios to import boto3): what that function would cost with none of ecpay_lambda's own code. Statements,
# not modules: pydantic loads its models only on ``from pydantic import BaseModel``.
RESOLVER = (
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
    "from aws_lambda_powertools.event_handler.openapi.params import Body\n"
    "import aws_lambda_powertools.event_handler.middlewares.openapi_validation\n"
)
FLOORS: dict[str, str] = {
    "floor: Powertools package (Logger, Metrics, Tracer)": "import aws_lambda_powertools\n",
    "floor: Powertools event_handler (every resolver)": "import aws_lambda_powertools.event_handler\n",
    "floor: pydantic BaseModel": "from pydantic import BaseModel\n",
    "floor: resolver + validation (Powertools, pydantic)": RESOLVER,
    "floor: boto3 + resolver + validation": "import boto3\n" + RESOLVER,
}


def _probe(modules: tuple[str, ...], clock: str = "perf_counter") -> str:
    # Plain import statements (-X importtime does not see importlib.import_module's top-level module).
    return _timed("".join(f"import {name}\n" for name in modules), clock)


def _timed(statements: str, clock: str = "perf_counter") -> str:
    return f"import time\nstart = time.{clock}()\n{statements}print(time.{clock}() - start)\n"


def _environment() -> dict[str, str]:
    # Bytecode caches on, for every module alike: a deployment package has its dependencies compiled
    # (pip does it) and should have ours compiled too (see docs/deploy.md); without them each sample
    # would mostly time the compiler.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def sample(modules: tuple[str, ...] | str, clock: str = "perf_counter") -> float:
    """Seconds one fresh interpreter spends importing ``modules`` (or running import statements), by
    ``clock``: wall time (``perf_counter``), or the process's CPU time (``process_time``: steadier
    than wall time on a machine shared with other work, blind to waiting for the disk)."""
    code = _timed(modules, clock) if isinstance(modules, str) else _probe(modules, clock)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=_environment(),
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(
    rounds: int, seed: int | None = None, floors: bool = False, clock: str = "perf_counter"
) -> dict[str, list[float]]:
    """``rounds`` samples of every target (and of the library ``FLOORS``), interleaved in a shuffled
    order each round."""
    rng = random.Random(seed)
    targets: dict[str, tuple[str, ...] | str] = {**TARGETS, **(FLOORS if floors else {})}
    for modules in targets.values():
        sample(modules, clock)  # warm the bytecode caches and the OS page cache once
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        order = list(targets)
        rng.shuffle(order)
        for name in order:
            samples[name].append(sample(targets[name], clock))
    return samples


def summarise(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median and minimum milliseconds per target, each as a ratio to ``import boto3``'s."""
    base = statistics.median(samples["import boto3"])
    base_min = min(samples["import boto3"])
    return {
        name: {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "ratio": round(statistics.median(values) / base, 3),
            "min_ms": round(min(values) * 1000, 1),
            "min_ratio": round(min(values) / base_min, 3),
        }
        for name, values in samples.items()
    }


def breakdown(target: str, rounds: int) -> list[tuple[str, float]]:
    """Mean self time (ms) of each module ``target`` loads beyond ``import boto3`` (``-X importtime``)."""
    modules = ("boto3", *TARGETS[target])
    totals: dict[str, float] = {}
    for _ in range(rounds):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", _probe(modules)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=_environment(),
        )
        lines = proc.stderr.splitlines()
        # Everything after boto3's own line was loaded for the target, not for boto3.
        start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("| boto3"))
        for line in lines[start + 1 :]:
            if not line.startswith("import time:"):
                continue
            self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
            totals[name] = totals.get(name, 0.0) + int(self_us) / 1000 / rounds
    return sorted(totals.items(), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="samples per target (default 15)")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed (default random)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {BUDGET_TARGET} > {BUDGET}x")
    parser.add_argument(
        "--floors", action="store_true", help="also time the libraries under the management function alone"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="CPU time of each import instead of wall time (a shared machine)"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help=f"also list what {BUDGET_TARGET} adds to boto3, module by module",
    )
    args = parser.parse_args(argv)
    clock = "process_time" if args.cpu else "perf_counter"
    summary = summarise(measure(max(1, args.rounds), args.seed, args.floors, clock))
    within = summary[BUDGET_TARGET]["ratio"] <= BUDGET
    modules = breakdown(BUDGET_TARGET, max(1, args.rounds)) if args.breakdown else []
    if args.json:
        report = {"python": sys.version.split()[0], "budget": BUDGET, "within": within, **summary}
        if modules:
            report["breakdown_ms"] = {name: round(ms, 2) for name, ms in modules}
        print(json.dumps(report))
    else:
        print(f"Python {sys.version.split()[0]}, {args.rounds} rounds (ratios are to import boto3)")
        print(f"{'target':<32}{'median ms':>11}{'ratio':>7}{'min ms':>9}{'ratio':>7}")
        for name, row in summary.items():
            print(
                f"{name:<32}{row['median_ms']:>11.1f}{row['ratio']:>7.2f}{row['min_ms']:>9.1f}{row['min_ratio']:>7.2f}"
            )
        verdict = "within" if within else "OVER"
        head = summary[BUDGET_TARGET]
        print(
            f"\nNotification function, handler module + its first request's imports: {head['ratio']:.3f}x"
            f" import boto3 (median; {head['median_ms']:.1f} ms), {verdict} the {BUDGET}x budget"
        )
        if modules:
            print(f"\nWhat {BUDGET_TARGET} adds to boto3 (mean self time, ms):")
            for name, ms in modules:
                if ms >= 0.1:
                    print(f"  {ms:6.2f}  {name}")
            print(f"  {sum(ms for _, ms in modules):6.2f}  total")
    return 0 if within or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
