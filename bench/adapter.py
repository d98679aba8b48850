"""httpd-adapter benchmark, measured side by side with apache_exporter.

    make bench-adapter            (or: .venv/bin/python bench/adapter.py --help)

One real Apache (event MPM, mod_status, ExtendedStatus On) on a loopback
port; httpd-adapter and apache_exporter (Debian's prometheus-apache-exporter)
both scrape its /server-status?auto. For 1 and then 4 concurrent scrapers,
each on its own keep-alive connection, the two exporters take turns in
rounds (who goes first alternates), so background load on this noisy
2-core machine hits both alike. Every answer is checked (200, apache_up 1).

Measured per exporter and concurrency: scrape latency p50 and p99 (every
scrape of every round), scrapes per second (median over rounds), and the
exporter's resident memory (VmRSS) at the start, after 1,000 scrapes and at
the end, sampled after every round. Ratios are ours / apache_exporter's:
"ratio" over the pooled figures, "paired" the median over rounds of the
ratio of two rounds run back to back (the figure the goals are judged on,
since neighbouring rounds share the machine's background load).

Prints one table and writes it, with the samples, as JSON to
bench/results/adapter.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The test harness's helpers (Apache, processes stopped by PID) are reused.
sys.path.insert(0, str(REPO_ROOT / "tests"))

from support.apache import ApacheServer  # noqa: E402
from support.httpd_adapter import APACHE_EXPORTER, mod_status_server  # noqa: E402
from support.net import free_port, port_open  # noqa: E402
from support.processes import Process, ProcessGroup  # noqa: E402
from support.wait import wait_until  # noqa: E402

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "adapter.json"
HTTPD_ADAPTER = str(Path(sys.executable).parent / "httpd-adapter")
CONCURRENCY = (1, 4)
LATENCY_RATIO_GOAL = 1.0
RSS_GOAL_MIB = 40.0
RSS_FLAT_MIB = 1.0
OURS, THEIRS = "httpd-adapter", "apache_exporter"


class BenchError(RuntimeError):
    pass


@dataclass
class Exporter:
    name: str
    process: Process
    port: int

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError(f"{self.name} has no VmRSS")


@dataclass
class Series:
    """What one exporter did at one concurrency."""

    exporter: str
    concurrency: int
    rounds_ms: list[list[float]] = field(default_factory=list)
    """Scrape latencies, one list per round."""
    rates: list[float] = field(default_factory=list)
    """Scrapes per second, one per round."""

    @property
    def latencies_ms(self) -> list[float]:
        return [latency for round_ms in self.rounds_ms for latency in round_ms]

    def percentile(self, q: float, latencies: list[float] | None = None) -> float:
        ordered = sorted(self.latencies_ms if latencies is None else latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def round_percentiles(self, q: float) -> list[float]:
        return [self.percentile(q, round_ms) for round_ms in self.rounds_ms]


@dataclass
class Memory:
    exporter: str
    samples: list[tuple[int, int]] = field(default_factory=list)
    """(scrapes served so far, VmRSS KiB) after warm-up and after every round."""

    def at(self, scrapes: int) -> int:
        return next(rss for count, rss in self.samples if count >= scrapes)


def start_exporters(processes: ProcessGroup, apache: ApacheServer, logs: Path) -> list[Exporter]:
    scrape_uri = f"{apache.url}/server-status?auto"
    ours_port, theirs_port = free_port(), free_port()
    exporters = [
        Exporter(
            OURS,
            processes.start(
                [HTTPD_ADAPTER, "--scrape-uri", scrape_uri, "--listen", f"127.0.0.1:{ours_port}"],
                logs / "httpd-adapter.log",
            ),
            ours_port,
        ),
        Exporter(
            THEIRS,
            processes.start(
                [
                    APACHE_EXPORTER,
                    f"--scrape_uri={scrape_uri}",
                    f"--telemetry.address=127.0.0.1:{theirs_port}",
                ],
                logs / "apache_exporter.log",
            ),
            theirs_port,
        ),
    ]
    for exporter in exporters:
        wait_until(
            lambda e=exporter: port_open(e.port) or not e.process.running(),  # type: ignore[misc]
            15,
            message=f"{exporter.name} to listen",
        )
        if not exporter.process.running():
            raise BenchError(f"{exporter.name} exited:\n{exporter.process.output()}")
    return exporters


def scrape_loop(port: int, count: int, latencies: list[float], errors: list[str]) -> None:
    """`count` scrapes of /metrics on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            body = response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 200 or b"\napache_up 1" not in body:
                errors.append(f"status {response.status}: {body[:200]!r}")
                return
    except OSError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def run_round(exporter: Exporter, concurrency: int, scrapes: int) -> tuple[list[float], float]:
    """`scrapes` scrapes split over `concurrency` threads: (latencies, scrapes/s)."""
    per_thread = scrapes // concurrency
    results: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=scrape_loop, args=(exporter.port, per_thread, results[i], errors))
        for i in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchError(f"{exporter.name}: {errors[0]}")
    latencies = [latency for result in results for latency in result]
    return latencies, len(latencies) / elapsed


def measure(
    exporters: list[Exporter], scrapes: int, rounds: int, warmup: int
) -> tuple[list[Series], list[Memory]]:
    served = {exporter.name: 0 for exporter in exporters}
    memory = {exporter.name: Memory(exporter.name) for exporter in exporters}
    for exporter in exporters:
        run_round(exporter, 1, warmup)
        served[exporter.name] += warmup
        memory[exporter.name].samples.append((served[exporter.name], exporter.rss_kib()))
    series: list[Series] = []
    for concurrency in CONCURRENCY:
        by_name = {e.name: Series(e.name, concurrency) for e in exporters}
        for number in range(rounds):
            order = exporters if number % 2 == 0 else exporters[::-1]
            for exporter in order:
                latencies, rate = run_round(exporter, concurrency, scrapes // rounds)
                by_name[exporter.name].rounds_ms.append(latencies)
                by_name[exporter.name].rates.append(rate)
                served[exporter.name] += len(latencies)
                memory[exporter.name].samples.append((served[exporter.name], exporter.rss_kib()))
        series += by_name.values()
    return series, list(memory.values())


def mib(kib: int) -> float:
    return kib / 1024


def summarise(series: list[Series], memory: list[Memory]) -> dict[str, object]:
    rows: dict[str, dict[str, float]] = {OURS: {}, THEIRS: {}}
    for s in series:
        row = rows[s.exporter]
        row[f"p50_ms_c{s.concurrency}"] = s.percentile(0.5)
        row[f"p99_ms_c{s.concurrency}"] = s.percentile(0.99)
        row[f"scrapes_per_s_c{s.concurrency}"] = statistics.median(s.rates)
    for m in memory:
        row = rows[m.exporter]
        row["rss_mib_start"] = mib(m.samples[0][1])
        row["rss_mib_after_1000"] = mib(m.at(1000))
        row["rss_mib_end"] = mib(m.samples[-1][1])
        row["rss_mib_max"] = mib(max(rss for _, rss in m.samples))
    ratios = {key: rows[OURS][key] / rows[THEIRS][key] for key in rows[OURS]}
    # Each round of ours ran right next to one of theirs, under the same
    # background load: the median of those paired ratios is the least noisy.
    paired: dict[str, float] = {}
    for concurrency in CONCURRENCY:
        ours_series, theirs_series = (
            next(s for s in series if s.exporter == name and s.concurrency == concurrency)
            for name in (OURS, THEIRS)
        )
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            pairs = zip(
                ours_series.round_percentiles(q), theirs_series.round_percentiles(q), strict=True
            )
            paired[f"{name}_ms_c{concurrency}"] = statistics.median(a / b for a, b in pairs)
        pairs = zip(ours_series.rates, theirs_series.rates, strict=True)
        paired[f"scrapes_per_s_c{concurrency}"] = statistics.median(a / b for a, b in pairs)
    ours = rows[OURS]
    goals = {
        "latency ratio p50 <= 1.0 (1 scraper, paired)": paired["p50_ms_c1"] <= LATENCY_RATIO_GOAL,
        "latency ratio p50 <= 1.0 (4 scrapers, paired)": paired["p50_ms_c4"] <= LATENCY_RATIO_GOAL,
        "latency ratio p99 <= 1.0 (1 scraper, paired)": paired["p99_ms_c1"] <= LATENCY_RATIO_GOAL,
        "latency ratio p99 <= 1.0 (4 scrapers, paired)": paired["p99_ms_c4"] <= LATENCY_RATIO_GOAL,
        "RSS after 1,000 scrapes < 40 MiB": ours["rss_mib_after_1000"] < RSS_GOAL_MIB,
        "RSS flat (max - start < 1 MiB)": ours["rss_mib_max"] - ours["rss_mib_start"]
        < RSS_FLAT_MIB,
    }
    return {"rows": rows, "ratios": ratios, "paired_ratios": paired, "goals": goals}


LABELS = {
    "p50_ms_c1": "latency p50, 1 scraper (ms)",
    "p99_ms_c1": "latency p99, 1 scraper (ms)",
    "p50_ms_c4": "latency p50, 4 scrapers (ms)",
    "p99_ms_c4": "latency p99, 4 scrapers (ms)",
    "scrapes_per_s_c1": "scrapes/s, 1 scraper",
    "scrapes_per_s_c4": "scrapes/s, 4 scrapers",
    "rss_mib_start": "RSS after warm-up (MiB)",
    "rss_mib_after_1000": "RSS after 1,000 scrapes (MiB)",
    "rss_mib_end": "RSS at the end (MiB)",
    "rss_mib_max": "RSS max over the run (MiB)",
}


def table(summary: dict[str, object]) -> str:
    rows: dict[str, dict[str, float]] = summary["rows"]  # type: ignore[assignment]
    ratios: dict[str, float] = summary["ratios"]  # type: ignore[assignment]
    paired: dict[str, float] = summary["paired_ratios"]  # type: ignore[assignment]
    goals: dict[str, bool] = summary["goals"]  # type: ignore[assignment]
    lines = [
        f"| {'measure':32} | {OURS:>13} | {THEIRS:>15} | {'ratio':>6} | {'paired':>6} |",
        f"|{'-' * 34}|{'-' * 14}:|{'-' * 16}:|{'-' * 7}:|{'-' * 7}:|",
    ]
    for key, label in LABELS.items():
        shown = f"{paired[key]:6.2f}" if key in paired else f"{'':6}"
        lines.append(
            f"| {label:32} | {rows[OURS][key]:13.2f} | {rows[THEIRS][key]:15.2f} "
            f"| {ratios[key]:6.2f} | {shown} |"
        )
    lines.append("")
    lines += [f"{'met ' if met else 'MISSED'} {goal}" for goal, met in goals.items()]
    return "\n".join(lines)


def machine() -> dict[str, object]:
    apache = subprocess.run(
        ["/usr/sbin/apache2", "-v"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    reference = subprocess.run(
        [APACHE_EXPORTER, "--version"], capture_output=True, text=True, check=False
    )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "apache": apache,
        "apache_exporter": (reference.stdout + reference.stderr).split("\n")[0],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--scrapes",
        type=int,
        default=2000,
        help="scrapes per exporter and concurrency, split over the rounds (default 2000)",
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds per concurrency")
    parser.add_argument("--warmup", type=int, default=100, help="uncounted scrapes first")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON file")
    args = parser.parse_args(argv)
    if args.scrapes // args.rounds < max(CONCURRENCY) or args.scrapes < 1000:
        parser.error("--scrapes must be at least 1000 and leave each round a scrape per scraper")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for program in (HTTPD_ADAPTER, APACHE_EXPORTER):
        if not Path(program).exists():
            print(f"{program} is missing: run `make bench-adapter`", file=sys.stderr)
            return 2
    processes = ProcessGroup()
    work = Path(tempfile.mkdtemp(prefix="bench-adapter-"))
    try:
        apache = mod_status_server(processes, work / "apache")
        try:
            exporters = start_exporters(processes, apache, work)
            series, memory = measure(exporters, args.scrapes, args.rounds, args.warmup)
        finally:
            apache.stop()
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(series, memory)
    print(table(summary))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "adapter",
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": machine(),
        **summary,
        "memory_samples": [asdict(m) for m in memory],
        "latencies_ms": {f"{s.exporter} c{s.concurrency}": s.rounds_ms for s in series},
    }
    args.output.write_text(json.dumps(document, indent=1))
    print(f"\nJSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
