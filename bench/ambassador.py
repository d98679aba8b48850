"""pg-ambassador benchmark, measured side by side with PgBouncer and HAProxy.

    make bench-ambassador          (or: .venv/bin/python bench/ambassador.py --help)

One PostgreSQL server (pgbench -i, scale 1) and, in front of it, on free
loopback ports, each started here with a configuration of its own:

- pg-ambassador: one `*` route to the server, `tls: disable` (like the
  others), default logging; over TCP and over its Unix socket;
- PgBouncer in session mode (the mode that matches an ambassador: one server
  connection per client), run as the server's account (it refuses root);
- HAProxy in `mode tcp`, default threads.

Then pgbench, select-only (`-S`, simple protocol) for --seconds each:
8 clients (2 threads), 1 client, and 8 clients reconnecting for every
transaction (`-C`: connection set-up rate). Every round runs every path in a
new order; the report takes the median over rounds of each path's TPS as a
ratio to direct in the same round, and at 1 client the latency added per
transaction (path minus direct, same round). Each run also reads, from
/proc, the proxy process's CPU time per transaction and how busy the whole
machine was; from direct's figures follows the CPU a proxy may spend per
transaction for a 0.80 ratio. The machine has 2 shared cores on which
pgbench, the server and the proxy all run, so only ratios and medians mean
anything.

Prints a table and writes everything, raw runs included, to
bench/results/ambassador.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script: the test harness's helpers (processes stopped by PID, real
# PostgreSQL servers) are reused rather than copied.
sys.path[:0] = [str(REPO_ROOT / "tests")]

from support.net import free_port, port_open  # noqa: E402
from support.postgres import (  # noqa: E402
    PgServer,
    as_run_user,
    make_template,
    new_server,
    owned_directory,
    program,
    remove_server,
)
from support.processes import ProcessGroup  # noqa: E402
from support.wait import wait_until  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results" / "ambassador.json"
DATABASE = "bench"


@dataclass(frozen=True)
class Endpoint:
    """A way to reach the server: pgbench's -h and -p."""

    name: str
    host: str
    port: int
    pid: int | None = None
    """The proxy's process, whose CPU time per transaction is measured."""


@dataclass(frozen=True)
class Workload:
    name: str
    args: tuple[str, ...]


RATIO_GOAL = 0.80
WORKLOADS = (
    Workload("8 clients", ("-c", "8", "-j", "2")),
    Workload("1 client", ("-c", "1", "-j", "1")),
    Workload("8 clients, -C", ("-c", "8", "-j", "2", "-C")),
)


@dataclass
class Run:
    round: int
    workload: str
    path: str
    tps: float
    latency_ms: float
    proxy_cpu_us: float | None
    """The proxy's CPU time (user + system) per transaction; None for direct."""
    machine_busy: float
    """Share of the machine's CPU time that was busy during the run."""

    def __str__(self) -> str:
        cpu = "" if self.proxy_cpu_us is None else f", proxy {self.proxy_cpu_us:.1f} µs CPU/tx"
        return (
            f"{self.workload:<14} {self.path:<21} {self.tps:>9.0f} tps "
            f"{self.latency_ms:.3f} ms{cpu}, machine {self.machine_busy:.0%} busy"
        )


def environment() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def measured_run(round_number: int, target: Endpoint, workload: Workload, seconds: int) -> Run:
    """One pgbench run, with the proxy's CPU time per transaction and how
    busy the machine was: where the time goes, not only how much."""
    cpu_before = process_cpu_seconds(target.pid) if target.pid else 0.0
    busy_before, total_before = machine_ticks()
    tps, latency, transactions = pgbench(target, workload, seconds)
    busy_after, total_after = machine_ticks()
    proxy_cpu_us = None
    if target.pid:
        proxy_cpu_us = (process_cpu_seconds(target.pid) - cpu_before) * 1e6 / transactions
    busy = (busy_after - busy_before) / max(1, total_after - total_before)
    return Run(round_number, workload.name, target.name, tps, latency, proxy_cpu_us, busy)


def pgbench(target: Endpoint, workload: Workload, seconds: int) -> tuple[float, float, int]:
    """(TPS, average latency in ms, transactions) of one pgbench run."""
    result = subprocess.run(
        [
            program("pgbench"),
            "-n",
            "-S",
            "-M",
            "simple",
            "-T",
            str(seconds),
            *workload.args,
            "-h",
            target.host,
            "-p",
            str(target.port),
            "-U",
            "postgres",
            DATABASE,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds * 3 + 60,
        env=environment(),
    )
    tps = re.search(r"^tps = ([\d.]+)", result.stdout, re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", result.stdout, re.MULTILINE)
    done = re.search(r"^number of transactions actually processed: (\d+)", result.stdout, re.M)
    if result.returncode != 0 or tps is None or latency is None or done is None:
        raise RuntimeError(
            f"pgbench through {target.name} failed:\n{result.stdout}\n{result.stderr}"
        )
    return float(tps.group(1)), float(latency.group(1)), int(done.group(1))


def wait_listening(port: int, what: str, running: Callable[[], bool]) -> None:
    def up() -> bool:
        if not running():
            raise RuntimeError(f"{what} exited")
        return port_open(port)

    wait_until(up, 20, 0.05, message=what)


@contextmanager
def postgres(processes: ProcessGroup, logs: Path) -> Iterator[PgServer]:
    directory = owned_directory("bench-pg-template-")
    server = None
    try:
        template = make_template(directory)
        server = new_server(processes, template, logs, "bench", settings={"max_connections": "100"})
        server.sql(f"CREATE DATABASE {DATABASE}")
        subprocess.run(
            [
                program("pgbench"),
                "-i",
                "-q",
                "-s",
                "1",
                "-h",
                str(server.socket_dir),
                "-p",
                str(server.port),
                "-U",
                "postgres",
                DATABASE,
            ],
            check=True,
            capture_output=True,
            env=environment(),
        )
        yield server
    finally:
        if server is not None:
            remove_server(server)
        shutil.rmtree(directory, ignore_errors=True)


def start_ambassador(
    processes: ProcessGroup, work: Path, server: PgServer, extra: list[str]
) -> tuple[Endpoint, Endpoint]:
    port = free_port()
    socket_dir = work / "ambassador-socket"
    config = work / "ambassador.yaml"
    config.write_text(
        f"routes:\n  '*':\n    servers: ['127.0.0.1:{server.port}']\n    tls: disable\n"
        "limits:\n  max_client_connections: 200\n"
    )
    process = processes.start(
        [
            sys.executable,
            "-m",
            "pg_ambassador",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
            "--listen",
            f"unix:{socket_dir}",
            *extra,
        ],
        work / "ambassador.log",
        env=dict(os.environ),
    )
    wait_listening(port, "pg-ambassador", process.running)
    return Endpoint("pg-ambassador", "127.0.0.1", port, process.pid), Endpoint(
        "pg-ambassador (unix)", str(socket_dir), 5432, process.pid
    )


def start_pgbouncer(processes: ProcessGroup, server: PgServer) -> tuple[Endpoint, Path]:
    directory = owned_directory("bench-pgbouncer-")
    port = free_port()
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={server.port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        "pool_mode = session\n"
        "max_client_conn = 200\n"
        "default_pool_size = 20\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    process = processes.start(
        as_run_user(["/usr/sbin/pgbouncer", str(directory / "pgbouncer.ini")]),
        directory / "pgbouncer.out",
        env=environment(),
    )
    wait_listening(port, "PgBouncer", process.running)
    return Endpoint("PgBouncer (session)", "127.0.0.1", port, process.pid), directory


def start_haproxy(processes: ProcessGroup, work: Path, server: PgServer) -> Endpoint:
    port = free_port()
    config = work / "haproxy.cfg"
    config.write_text(
        "global\n"
        "    maxconn 1000\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 5s\n"
        "    timeout client 1h\n"
        "    timeout server 1h\n"
        "listen postgres\n"
        f"    bind 127.0.0.1:{port}\n"
        f"    server db 127.0.0.1:{server.port}\n"
    )
    process = processes.start(
        ["/usr/sbin/haproxy", "-db", "-f", str(config)], work / "haproxy.log", env=environment()
    )
    wait_listening(port, "HAProxy", process.running)
    return Endpoint("HAProxy (tcp)", "127.0.0.1", port, process.pid)


def tool_version(argv: list[str], pattern: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = re.search(pattern, result.stdout + result.stderr)
    return found.group(1) if found else "?"


def summarise(runs: list[Run], paths: list[Endpoint]) -> dict[str, dict[str, dict[str, float]]]:
    """Per workload and path: median TPS, median ratio to direct in the same
    round, and (latency) median added milliseconds against direct."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for workload in WORKLOADS:
        by_round: dict[int, dict[str, Run]] = {}
        for run in runs:
            if run.workload == workload.name:
                by_round.setdefault(run.round, {})[run.path] = run
        rows: dict[str, dict[str, float]] = {}
        for target in paths:
            mine = [r[target.name] for r in by_round.values()]
            direct = [r["direct"] for r in by_round.values()]
            rows[target.name] = {
                "tps": statistics.median(run.tps for run in mine),
                "ratio": statistics.median(
                    run.tps / base.tps for run, base in zip(mine, direct, strict=True)
                ),
                "latency_ms": statistics.median(run.latency_ms for run in mine),
                "added_latency_us": statistics.median(
                    (run.latency_ms - base.latency_ms) * 1000
                    for run, base in zip(mine, direct, strict=True)
                ),
                "machine_busy": statistics.median(run.machine_busy for run in mine),
            }
            cpu = [run.proxy_cpu_us for run in mine if run.proxy_cpu_us is not None]
            if cpu:
                rows[target.name]["proxy_cpu_us_per_tx"] = statistics.median(cpu)
        summary[workload.name] = rows
    return summary


def proxy_budget_us(direct: dict[str, float], ratio: float = RATIO_GOAL) -> float:
    """CPU time per transaction a proxy may take, on a machine that direct
    already keeps busy, for throughput to stay at `ratio` of direct: the
    busy CPU time per direct transaction times (1/ratio - 1)."""
    cpus = os.cpu_count() or 1
    per_transaction = cpus * direct["machine_busy"] / direct["tps"]
    return per_transaction * (1 / ratio - 1) * 1e6


def print_table(summary: dict[str, dict[str, dict[str, float]]], paths: list[Endpoint]) -> None:
    width = max(len(target.name) for target in paths)
    eight, one, reconnect = (summary[w.name] for w in WORKLOADS)
    print()
    print(
        f"{'path':<{width}}  {'8 clients TPS':>13} {'vs direct':>9} {'CPU µs/tx':>9}  "
        f"{'1 client TPS':>12} {'vs direct':>9} {'added µs/tx':>11} {'CPU µs/tx':>9}  "
        f"{'-C TPS':>8} {'vs direct':>9}"
    )
    for target in paths:
        a, b, c = eight[target.name], one[target.name], reconnect[target.name]
        added = "-" if target.name == "direct" else f"{b['added_latency_us']:+.0f}"
        print(
            f"{target.name:<{width}}  {a['tps']:>13.0f} {a['ratio']:>9.2f} {cpu_cell(a):>9}  "
            f"{b['tps']:>12.0f} {b['ratio']:>9.2f} {added:>11} {cpu_cell(b):>9}  "
            f"{c['tps']:>8.0f} {c['ratio']:>9.2f}"
        )
    direct = eight["direct"]
    print(
        f"\nAt 8 clients direct keeps the machine {direct['machine_busy']:.0%} busy, so a ratio "
        f"of {RATIO_GOAL:.2f} leaves a proxy {proxy_budget_us(direct):.0f} µs of CPU per "
        "transaction (CPU µs/tx: the proxy process's user + system time)."
    )


def cpu_cell(row: dict[str, float]) -> str:
    value = row.get("proxy_cpu_us_per_tx")
    return "-" if value is None else f"{value:.1f}"


def goals(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, bool]:
    eight, one = summary["8 clients"], summary["1 client"]
    ours = eight["pg-ambassador"]["ratio"]
    return {
        f"8 clients: at least {RATIO_GOAL:.2f} of direct": ours >= RATIO_GOAL,
        "8 clients: not below PgBouncer's ratio": ours >= eight["PgBouncer (session)"]["ratio"],
        "8 clients: not below HAProxy's ratio": ours >= eight["HAProxy (tcp)"]["ratio"],
        "1 client: added latency no more than HAProxy's": (
            one["pg-ambassador"]["added_latency_us"] <= one["HAProxy (tcp)"]["added_latency_us"]
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="length of each pgbench run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every path")
    parser.add_argument(
        "--ambassador-arg",
        action="append",
        default=[],
        help="extra pg-ambassador flag (e.g. --log-level=warning); repeatable",
    )
    args = parser.parse_args()
    work = owned_directory("bench-ambassador-")
    processes = ProcessGroup()
    runs: list[Run] = []
    pgbouncer_dir: Path | None = None
    try:
        with postgres(processes, work) as server:
            ours, ours_unix = start_ambassador(processes, work, server, args.ambassador_arg)
            pgbouncer, pgbouncer_dir = start_pgbouncer(processes, server)
            haproxy = start_haproxy(processes, work, server)
            paths = [
                Endpoint("direct", "127.0.0.1", server.port),
                ours,
                ours_unix,
                pgbouncer,
                haproxy,
            ]
            for workload in WORKLOADS:  # warm-up: caches, the proxies' first connections
                for target in paths:
                    pgbench(target, workload, 1)
            shuffle = random.Random(5432)
            for round_number in range(args.rounds):
                for workload in WORKLOADS:
                    order = paths[:]
                    shuffle.shuffle(order)
                    for target in order:
                        run = measured_run(round_number, target, workload, args.seconds)
                        runs.append(run)
                        print(f"round {round_number + 1}/{args.rounds} {run}", flush=True)
            summary = summarise(runs, paths)
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        if pgbouncer_dir is not None:
            shutil.rmtree(pgbouncer_dir, ignore_errors=True)
    print_table(summary, paths)
    verdict = goals(summary)
    print()
    for goal, met in verdict.items():
        print(f"{'met' if met else 'NOT met'}: {goal}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "versions": {
                    "pg-ambassador": version("pg-ambassador"),
                    "postgresql": tool_version([program("postgres"), "--version"], r"([\d.]+)"),
                    "pgbouncer": tool_version(["/usr/sbin/pgbouncer", "--version"], r"([\d.]+)"),
                    "haproxy": tool_version(["/usr/sbin/haproxy", "-v"], r"version ([\d.]+)"),
                },
                "settings": {"seconds": args.seconds, "rounds": args.rounds},
                "summary": summary,
                "goals": verdict,
                "runs": [asdict(run) for run in runs],
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )
    print(f"\nwrote {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
