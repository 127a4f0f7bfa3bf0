"""Intake throughput and latency: POST /api/v1/applications under gunicorn on PostgreSQL, against a reference.

    python bench/intake.py [--duration 10] [--warmup 3] [--concurrency 1,2,4,8,16,32]

Needs wrk on PATH (Debian: apt-get install wrk). Two servers with the same gunicorn setup (gthread,
ACCRUAL_API_WORKERS x ACCRUAL_API_THREADS, by default 2 x 4), each on a new database of the same PostgreSQL:

- Accrual: `accrual api` on a migrated, seeded stack with a redis-server of its own as the broker and the
  rate limits' store (intake never refused; the limiter still counts every submission). No worker or relay
  runs: intake stores the application, its history, its outbox event and their audit entries;
- reference: bench/intake_reference.py, a bare Flask endpoint inserting the JSON body as one JSONB row with
  SQLAlchemy Core.

wrk (bench/intake.lua, closed loop) loads each server at each level of connections for --duration seconds,
after --warmup seconds at the highest level that are not counted; at each level both servers in turn, the
order alternating from level to level so that a change in the machine's load falls on both alike. Every
request carries the applicant of tests/support/applicants.py with its own screening id. After each run the
harness waits until the server's table stops growing. Printed per level: 2xx per second, p50 and p99, and
socket errors, of both; then the peak throughputs and their ratio (target >= 50 %), Accrual's p99 at the
level closest to half its peak on the rising side of the curve (target < 50 ms), and whether the rows
stored match the 2xx answers counted. Exit status 0 when both targets are met, 1 when one is not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import create_engine, text

from bench.harness import APPLICATIONS, BenchError, Client, bench_on, header, options, run, verdict
from tests.support.applicants import eligible_applicant
from tests.support.servers import fresh_pg_database
from tests.support.stack import TRIAL

LUA = Path(__file__).with_name("intake.lua")
THROUGHPUT_TARGET = 0.5
P99_TARGET_MS = 50.0


@dataclass
class Level:
    connections: int
    seconds: float
    requests: int
    ok_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.ok_2xx / self.seconds

    def cells(self) -> str:
        non_2xx = self.requests - self.ok_2xx
        return f"{self.rate:8.1f} {self.p50_ms:8.2f} {self.p99_ms:8.2f} {non_2xx:7d} {self.socket_errors:7d}"


@dataclass
class Server:
    """A server under load and the table it stores each request in."""

    name: str
    port: int
    database_url: str
    table: str
    levels: dict[int, Level] = field(default_factory=dict)
    answered: int = 1  # 2xx answers counted, the first request (checked before the runs) included
    in_flight: int = 0  # requests that may have been in flight when a wrk run stopped, at most

    def rows(self) -> int:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one())  # noqa: S608 - one of two constants
        finally:
            engine.dispose()

    def settle(self) -> None:
        """Until the requests wrk left in flight are done: the same count twice 0.5 s apart (30 s at most)."""
        last, deadline = self.rows(), time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if (now := self.rows()) == last:
                return
            last = now

    def load(self, connections: int, seconds: int, prefix: str, body_file: Path, token: str) -> Level:
        """One wrk run, then the server left to become idle."""
        command = [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
        ]
        command += [f"http://127.0.0.1:{self.port}{APPLICATIONS}", "--", str(body_file), token, prefix]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        found = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
        if done.returncode != 0 or not found:
            raise BenchError(
                f"wrk exited with {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
            )
        level = Level(connections, **json.loads(found[-1].removeprefix("WRK_RESULT ")))
        self.answered += level.ok_2xx
        self.in_flight += connections
        self.settle()
        return level

    @property
    def peak(self) -> Level:
        return max(self.levels.values(), key=lambda level: level.rate)

    def stored(self) -> str:
        late = self.rows() - self.answered
        ok = 0 <= late <= self.in_flight
        return (
            f"{self.name}: rows stored = {self.answered} 2xx answers counted + {late} finished after wrk "
            f"stopped (at most {self.in_flight} in flight): {'ok' if ok else 'UNEXPECTED'}"
        )


def half_load_level(levels: list[Level], half: float) -> Level:
    """The level whose throughput is closest to `half`, among those up to the first that reaches it: an
    overloaded level whose throughput has fallen back near half the peak is no half load."""
    ordered = sorted(levels, key=lambda level: level.connections)
    first = next((i for i, level in enumerate(ordered) if level.rate >= half), len(ordered) - 1)
    return min(ordered[: first + 1], key=lambda level: abs(level.rate - half))


def measure(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise BenchError("bench/intake.py needs wrk on PATH (Debian: apt-get install wrk)")
    levels = sorted({int(part) for part in args.concurrency.split(",")})
    header("Intake throughput: POST /api/v1/applications against a bare Flask + SQLAlchemy Core insert",
           "gunicorn", "flask", "sqlalchemy", "psycopg")  # fmt: skip
    with bench_on(sqlite=False) as bench, fresh_pg_database() as reference_url, bench.phase():
        stack = bench.stack
        env = bench.env(api_workers=stack.settings.api_workers, api_threads=stack.settings.api_threads)
        print(
            f"   gunicorn gthread {stack.settings.api_workers} x {stack.settings.api_threads} (both servers)"
        )
        accrual = Server(
            "Accrual", bench.serve("accrual", ["api"], env), stack.settings.database_url, "applications"
        )
        port = bench.serve(
            "reference", [], {**env, "INTAKE_REFERENCE_DATABASE_URL": reference_url}, "bench.intake_reference"
        )
        reference = Server("reference", port, reference_url, "submissions")
        body = {
            "trial_id": TRIAL,
            "site_id": stack.site_id,
            "applicant": eligible_applicant("__SCREENING_ID__"),
        }
        body_file = bench.workdir / "body.json"
        body_file.write_text(json.dumps(body, separators=(",", ":")))
        servers = [accrual, reference]
        for server in servers:
            first = {**body, "applicant": eligible_applicant("FIRST")}
            if (answer := Client(server.port, stack.coordinator).call("POST", APPLICATIONS, first))[0] != 202:
                raise BenchError(f"{server.name}: a first POST answered {answer}")
            server.settle()
            if args.warmup:
                server.load(max(levels), args.warmup, f"W{server.name[0]}", body_file, stack.coordinator)
        for index, connections in enumerate(levels):
            for server in servers if index % 2 == 0 else servers[::-1]:
                prefix = f"L{server.name[0]}{connections}"
                level = server.load(connections, args.duration, prefix, body_file, stack.coordinator)
                server.levels[connections] = level
                print(f"   {server.name:<9} {connections:>3} connections: {level.cells()}", flush=True)
        checks = [server.stored() for server in servers]
    print(f"\n{'conns':>5} | {'Accrual (accrual api)':<43} | reference (bare Flask + Core insert)")
    columns = f"{'2xx/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'sockerr':>7}"
    print(f"{'':>5} | {columns} | {columns}")
    for connections in levels:
        cells = (server.levels[connections].cells() for server in servers)
        print(f"{connections:>5} | " + " | ".join(cells))
    print("\n" + "\n".join(checks))
    a_peak, r_peak = accrual.peak, reference.peak
    ratio = a_peak.rate / r_peak.rate
    print(
        f"peak 2xx/s: Accrual {a_peak.rate:.1f} at {a_peak.connections} connections, reference "
        f"{r_peak.rate:.1f} at {r_peak.connections}: ratio {ratio:.1%} (target >= {THROUGHPUT_TARGET:.0%}) "
        + verdict(ratio >= THROUGHPUT_TARGET)
    )
    near = half_load_level(list(accrual.levels.values()), a_peak.rate / 2)
    print(
        f"Accrual near half its peak ({a_peak.rate / 2:.1f}/s): {near.connections} connections, "
        f"{near.rate:.1f}/s, p50 {near.p50_ms:.2f} ms, p99 {near.p99_ms:.2f} ms "
        f"(target p99 < {P99_TARGET_MS:.0f} ms) "
        f"{verdict(near.p99_ms < P99_TARGET_MS)}"
    )
    return (
        0
        if ratio >= THROUGHPUT_TARGET and near.p99_ms < P99_TARGET_MS and "UNEXPECTED" not in str(checks)
        else 1
    )


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per level (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of uncounted load first (default 3)")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32", help="connection counts (default 1,...,32)")
    run(parser, measure)
