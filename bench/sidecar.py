"""gitpoll benchmark, measured side by side with the classic `git pull` sidecar.

    make bench-sidecar            (or: .venv/bin/python bench/sidecar.py --help)

Four measurements, each against a reference run in the same process, on the
same machine, at the same moment (so background load hits both alike):

1. Trigger-to-published latency. For each push to a bare repository:
   t0, a signed POST /sync, then readlink(ROOT/current) every ~1 ms until it
   names the new commit. Reference: the duration of `git pull` in a clone,
   started right after the same push: the best case of `watch -n 60 git
   pull`, which in reality first waits up to 60 s. The two alternate who
   goes first. Over file:// and smart HTTP (Apache + git http-backend).
2. An idle poll (nothing new): round trips to the server and git processes
   per poll, while gitpoll polls every 0.2 s; divided by the growth of
   gitpoll_syncs_total{result="noop"}, read at sync boundaries. Round trips
   are HTTP requests in the server's access log (smart HTTP) or, on
   file://, connections plus protocol v2 commands in GIT_TRACE and
   GIT_TRACE_PACKET. Reference: `git fetch` and `git pull` with nothing new.
3. Idle memory: VmRSS of the gitpoll process after its first sync and ~3 s
   of polling every second, median of several samples. Reference: the
   `sh -c 'while sleep 60; do git pull; done'` loop (sh and sleep).
4. Publishing a 10,000-file repository: wall clock of `gitpoll --one-time`
   from spawn to exit 0, against `git clone --depth 1` of the same file://
   URL, alternating, fresh directories each time, after one uncounted warm-up
   round; on disk (the temp directory) and on a tmpfs (/dev/shm), which
   leaves only each tool's CPU cost. Plus the start-up time of gitpoll
   (`--version`: interpreter and imports), which every --one-time run pays.

Prints one table and writes everything, raw samples included, as JSON to
bench/results/sidecar.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so the packages it imports are put on the path here: this
# one's helpers (bench/) and the test harness's (tests/support: processes
# stopped by PID, upstream repositories, the smart-HTTP server), reused
# rather than copied.
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from bench.sidecar_tools import (  # noqa: E402
    Distribution,
    FileTail,
    TreeShape,
    generate_repository,
    git_env,
    git_programs_from_trace,
    git_version,
    peak_rss_kib,
    post_signed,
    round_trips_from_traces,
    rss_kib,
    timed_run,
    tree_rss_kib,
    unauthorized,
)
from support.gitpoll import GITPOLL, Gitpoll, GitpollFactory, published_commit  # noqa: E402
from support.gitrepo import Upstream, git  # noqa: E402
from support.processes import ProcessGroup  # noqa: E402

if TYPE_CHECKING:
    # Imported when used: without it (or Apache) the benchmark runs file:// only.
    from support.git_http import GitHttpServer

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "sidecar.json"
LATENCY_GOAL_MS = 500.0
RSS_GOAL_MIB = 40.0
RATIO_GOAL = 1.3
PUBLISH_TIMEOUT = 30.0
HTTP_USER = "bench"
HTTP_PASSWORD = "bench-password"


def gitpoll_env(work: Path) -> dict[str, str]:
    """gitpoll's environment: compiled bytecode, as in an installed image
    (pip compiles at install time). This checkout's editable install has
    none for gitpoll's own modules, and PYTHONDONTWRITEBYTECODE may forbid
    writing it; a private cache under `work` fills on the first start.
    Like the reference commands, gitpoll ignores the user's git configuration."""
    return git_env(PYTHONPYCACHEPREFIX=str(work / "pycache"), PYTHONDONTWRITEBYTECODE="")


class BenchError(RuntimeError):
    pass


# -- where the repositories are served from ------------------------------------


@dataclass
class Transport:
    """How gitpoll and the reference reach a bare repository."""

    name: str
    repos: Path
    url_for: Callable[[Path], str]
    reference_env: dict[str, str]
    """Environment for the reference git commands (credentials included)."""
    gitpoll_args: tuple[str, ...] = ()
    access_log: Callable[[], list[str]] | None = None
    """The server's requests so far, when the transport has a server."""

    def upstream(self, name: str) -> tuple[Upstream, str]:
        """A new bare repository with one commit, and its URL."""
        base = self.repos / name
        base.mkdir(parents=True)
        upstream = Upstream(base)
        upstream.commit_and_push({"index.html": "<h1>first</h1>\n"}, "first")
        return upstream, self.url_for(upstream.bare)


def file_transport(work: Path) -> Transport:
    return Transport(
        name="file",
        repos=work / "file-repos",
        url_for=lambda bare: f"file://{bare}",
        reference_env=git_env(),
    )


def http_transport(work: Path, processes: ProcessGroup) -> tuple[Transport, Callable[[], None]]:
    """Smart HTTP with basic auth, as a git host serves it; and how to stop
    the server. Raises when the harness's server (or Apache) is missing."""
    from support.apache import shared_directory
    from support.git_http import GitHttpServer

    # Apache's user cannot enter `work` (mode 0700): the repositories live
    # in a directory it can read, removed by the stop function.
    repos = shared_directory("bench-sidecar-repos-")
    try:
        server = GitHttpServer(processes, work / "apache", repos, HTTP_USER, HTTP_PASSWORD)
    except BaseException:
        shutil.rmtree(repos, ignore_errors=True)
        raise

    def stop() -> None:
        server.stop()
        shutil.rmtree(repos, ignore_errors=True)

    try:
        return _http_transport(work, repos, server), stop
    except BaseException:
        stop()
        raise


def _http_transport(work: Path, repos: Path, server: GitHttpServer) -> Transport:
    password_file = work / "http-password"
    password_file.write_text(HTTP_PASSWORD + "\n")
    # The reference keeps its credentials the usual way: a store helper.
    credentials = work / "http-credentials"
    credentials.write_text(f"http://{HTTP_USER}:{HTTP_PASSWORD}@127.0.0.1:{server.port}\n")
    global_config = work / "http-gitconfig"
    global_config.write_text(f"[credential]\n\thelper = store --file={credentials}\n")
    return Transport(
        name="http",
        repos=repos,
        url_for=lambda bare: server.url_for(str(bare.relative_to(repos))),
        reference_env=git_env(global_config),
        gitpoll_args=("--username", HTTP_USER, "--password-file", str(password_file)),
        access_log=server.requests,
    )


# -- shared state of one run ---------------------------------------------------


@dataclass
class Bench:
    work: Path
    processes: ProcessGroup
    gitpoll: GitpollFactory
    secret: bytes
    secret_file: Path
    env: dict[str, str]
    """For every gitpoll process: see gitpoll_env."""

    @classmethod
    def create(cls, work: Path, processes: ProcessGroup) -> Bench:
        logs = work / "logs"
        logs.mkdir()
        secret = b"bench-webhook-secret"
        secret_file = work / "webhook-secret"
        secret_file.write_bytes(secret + b"\n")
        factory = GitpollFactory(processes, logs)
        return cls(work, processes, factory, secret, secret_file, gitpoll_env(work))

    def start_gitpoll(
        self,
        transport: Transport,
        url: str,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> Gitpoll:
        root = self.work / f"{name}-root"
        return self.gitpoll.start(
            url,
            root,
            "--webhook-secret-file",
            str(self.secret_file),
            *transport.gitpoll_args,
            *args,
            env={**self.env, **(env or {})},
        )

    def clone(self, transport: Transport, url: str, name: str) -> Path:
        """A full clone, as `git clone $REPO . && watch git pull` makes."""
        target = self.work / f"{name}-clone"
        timed_run(["git", "clone", "--quiet", url, str(target)], env=transport.reference_env)
        return target


def wait_published(poller: Gitpoll, commit: str) -> None:
    try:
        poller.wait_published(commit, PUBLISH_TIMEOUT)
    except AssertionError as exc:
        raise BenchError(str(exc)) from None


# -- 1. trigger-to-published latency -------------------------------------------


@dataclass
class LatencyResult:
    transport: str
    gitpoll: Distribution
    git_pull: Distribution
    gitpoll_mean_sync_ms: float
    """gitpoll's own sync duration (from /metrics): the rest of the latency
    is the POST, waking the loop and this benchmark's 1 ms polling."""
    samples_ms: dict[str, list[float]]


def trigger_and_wait(bench: Bench, poller: Gitpoll, commit: str) -> float:
    """Seconds from sending the webhook to the link naming `commit`."""
    body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
    started = time.perf_counter()
    status = post_signed(poller.url + "/sync", bench.secret, body)
    if status != 202:
        raise BenchError(f"POST /sync answered {status}, not 202")
    while published_commit(poller.root) != commit:
        if time.perf_counter() - started > PUBLISH_TIMEOUT:
            raise BenchError(f"{commit[:12]} not published\n{poller.output()[-3000:]}")
        time.sleep(0.001)
    return time.perf_counter() - started


def pull_and_check(clone: Path, commit: str, env: dict[str, str]) -> float:
    elapsed = timed_run(["git", "pull", "--quiet"], env=env, cwd=clone)
    if git("rev-parse", "HEAD", cwd=clone) != commit:
        raise BenchError(f"git pull did not reach {commit[:12]}")
    return elapsed


def sync_totals(poller: Gitpoll) -> tuple[float, float]:
    """Seconds spent in successful syncs, and their number, so far."""
    return (
        poller.metric("gitpoll_sync_duration_seconds_sum", result="success"),
        poller.metric("gitpoll_sync_duration_seconds_count", result="success"),
    )


def measure_latency(bench: Bench, transport: Transport, pushes: int) -> LatencyResult:
    upstream, url = transport.upstream("latency")
    # A long period: every sync measured is the webhook's, none a poll's.
    poller = bench.start_gitpoll(transport, url, f"{transport.name}-latency", "--period", "3600")
    wait_published(poller, upstream.head())
    clone = bench.clone(transport, url, f"{transport.name}-latency")
    # The first publish (repository creation included) is not one measured.
    seconds_before, syncs_before = sync_totals(poller)
    samples: dict[str, list[float]] = {"gitpoll": [], "git_pull": []}
    for push in range(pushes):
        commit = upstream.commit_and_push({"index.html": f"<h1>version {push}</h1>\n"})
        runs: list[tuple[str, Callable[[], float]]] = [
            ("gitpoll", partial(trigger_and_wait, bench, poller, commit)),
            ("git_pull", partial(pull_and_check, clone, commit, transport.reference_env)),
        ]
        # Alternate who goes first, so neither always meets a warmer cache.
        for name, run in runs if push % 2 == 0 else reversed(runs):
            samples[name].append(run())
    seconds_after, syncs_after = sync_totals(poller)
    poller.process.stop()
    return LatencyResult(
        transport=transport.name,
        gitpoll=Distribution.of_seconds(samples["gitpoll"]),
        git_pull=Distribution.of_seconds(samples["git_pull"]),
        gitpoll_mean_sync_ms=1000 * (seconds_after - seconds_before) / (syncs_after - syncs_before),
        samples_ms={k: [round(s * 1000, 3) for s in v] for k, v in samples.items()},
    )


# -- 2. what an idle poll costs -------------------------------------------------


@dataclass
class PollCost:
    """Per poll; `unauthorized` is the part of `round_trips` answered 401."""

    polls: int
    round_trips: float
    unauthorized: float | None
    git_processes: float


@dataclass
class IdleResult:
    transport: str
    method: str
    gitpoll: PollCost
    git_fetch: PollCost
    git_pull: PollCost
    checkouts_created: int
    fetches_by_gitpoll: int
    published_during_window: int


@dataclass
class Traces:
    """GIT_TRACE and GIT_TRACE_PACKET files shared by everything traced."""

    commands: Path
    packets: Path

    def env(self) -> dict[str, str]:
        return {"GIT_TRACE": str(self.commands), "GIT_TRACE_PACKET": str(self.packets)}


class Window:
    """What git and the server did between its creation and `cost()`."""

    def __init__(self, traces: Traces, transport: Transport) -> None:
        self._commands = FileTail(traces.commands)
        self._packets = FileTail(traces.packets)
        self._log = transport.access_log
        self._log_start = len(self._log()) if self._log else 0

    def command_trace(self) -> str:
        return self._commands.read()

    def cost(self, polls: int) -> PollCost:
        commands = self._commands.read()
        if self._log is not None:
            requests = self._log()[self._log_start :]
            round_trips, denied = len(requests), unauthorized(requests)
        else:
            round_trips, denied = round_trips_from_traces(self._packets.read(), commands), None
        return PollCost(
            polls=polls,
            round_trips=round_trips / polls,
            unauthorized=None if denied is None else denied / polls,
            git_processes=git_programs_from_trace(commands) / polls,
        )


def noop_syncs(poller: Gitpoll) -> float:
    return poller.metric("gitpoll_syncs_total", result="noop")


def next_sync_boundary(poller: Gitpoll, timeout: float = 10.0) -> int:
    """Wait until a noop sync has just finished and return the noop count:
    the next poll is a whole period away, so a window opened or closed now
    holds whole polls only."""
    before = noop_syncs(poller)
    deadline = time.monotonic() + timeout
    while (count := noop_syncs(poller)) <= before:
        if time.monotonic() > deadline:
            raise BenchError(f"no noop sync within {timeout:g} s\n{poller.output()[-3000:]}")
        time.sleep(0.005)
    return int(count)


def reference_idle_cost(
    transport: Transport, clone: Path, traces: Traces, command: str, runs: int
) -> PollCost:
    window = Window(traces, transport)
    env = {**transport.reference_env, **traces.env()}
    for _ in range(runs):
        timed_run(["git", command, "--quiet"], env=env, cwd=clone)
    return window.cost(runs)


@dataclass
class GitpollIdle:
    cost: PollCost
    checkouts_created: int
    fetches: int
    published: int


def observe_gitpoll_idle(
    bench: Bench, transport: Transport, url: str, commit: str, traces: Traces, seconds: float
) -> GitpollIdle:
    poller = bench.start_gitpoll(
        transport, url, f"{transport.name}-idle", "--period", "0.2", env=traces.env()
    )
    wait_published(poller, commit)
    # Counted from a sync boundary: the link flips before the first sync
    # is recorded in /metrics.
    first = next_sync_boundary(poller)
    window = Window(traces, transport)
    worktrees = poller.root / ".worktrees"
    before = set(os.listdir(worktrees))
    published_before = poller.metric("gitpoll_syncs_total", result="success")
    time.sleep(seconds)
    last = next_sync_boundary(poller)
    observed = GitpollIdle(
        cost=window.cost(last - first),
        checkouts_created=len(set(os.listdir(worktrees)) - before),
        fetches=window.command_trace().count("trace: built-in: git fetch"),
        published=int(poller.metric("gitpoll_syncs_total", result="success") - published_before),
    )
    poller.process.stop()
    return observed


def measure_idle(bench: Bench, transport: Transport, seconds: float) -> IdleResult:
    upstream, url = transport.upstream("idle")
    traces = Traces(
        bench.work / f"{transport.name}-git-trace", bench.work / f"{transport.name}-packet-trace"
    )
    observed = observe_gitpoll_idle(bench, transport, url, upstream.head(), traces, seconds)
    clone = bench.clone(transport, url, f"{transport.name}-idle")
    runs = 5
    return IdleResult(
        transport=transport.name,
        method="server access log"
        if transport.access_log
        else "GIT_TRACE + GIT_TRACE_PACKET (connections + v2 commands)",
        gitpoll=observed.cost,
        git_fetch=reference_idle_cost(transport, clone, traces, "fetch", runs),
        git_pull=reference_idle_cost(transport, clone, traces, "pull", runs),
        checkouts_created=observed.checkouts_created,
        fetches_by_gitpoll=observed.fetches,
        published_during_window=observed.published,
    )


# -- 3. idle memory -------------------------------------------------------------


@dataclass
class MemoryResult:
    gitpoll_samples_kib: list[int]
    gitpoll_median_kib: float
    gitpoll_peak_kib: int
    """VmHWM: the most the process ever held, start-up included."""
    loop_samples_kib: list[int]
    loop_median_kib: float


def sample_kib(measure: Callable[[], int], count: int, interval: float) -> list[int]:
    samples = []
    for _ in range(count):
        samples.append(measure())
        time.sleep(interval)
    return samples


def gitpoll_idle_rss(bench: Bench, transport: Transport, idle: float) -> tuple[list[int], int]:
    """VmRSS samples after the first sync and `idle` seconds, and VmHWM."""
    upstream, url = transport.upstream("memory")
    # The configuration of a real deployment: probes, metrics and webhook on.
    poller = bench.start_gitpoll(transport, url, "memory", "--period", "1")
    wait_published(poller, upstream.head())
    time.sleep(idle)
    pid = poller.process.pid
    samples = sample_kib(lambda: rss_kib(pid), 7, 0.3)
    peak = peak_rss_kib(pid)
    poller.process.stop()
    return samples, peak


def pull_loop_rss(bench: Bench, transport: Transport) -> list[int]:
    """RSS samples of the classic sidecar while it sleeps (sh and sleep)."""
    _, url = transport.upstream("pull-loop")
    clone = bench.clone(transport, url, "pull-loop")
    loop = bench.processes.start(
        ["sh", "-c", "while sleep 60; do git pull; done"],
        bench.work / "logs" / "pull-loop.log",
        env=transport.reference_env,
        cwd=clone,
    )
    time.sleep(0.5)  # for sh to have started its sleep
    samples = sample_kib(lambda: tree_rss_kib(loop.pid), 5, 0.1)
    loop.stop()
    return samples


def measure_memory(bench: Bench, transport: Transport, idle: float) -> MemoryResult:
    gitpoll_samples, peak = gitpoll_idle_rss(bench, transport, idle)
    loop_samples = pull_loop_rss(bench, transport)
    return MemoryResult(
        gitpoll_samples_kib=gitpoll_samples,
        gitpoll_median_kib=statistics.median(gitpoll_samples),
        gitpoll_peak_kib=peak,
        loop_samples_kib=loop_samples,
        loop_median_kib=statistics.median(loop_samples),
    )


# -- 4. publishing a large repository -------------------------------------------


@dataclass
class LargeResult:
    filesystem: str
    files: int
    pack_kib: int
    rounds: int
    gitpoll_s: list[float] = field(default_factory=list)
    clone_s: list[float] = field(default_factory=list)

    @property
    def gitpoll_median(self) -> float:
        return statistics.median(self.gitpoll_s)

    @property
    def clone_median(self) -> float:
        return statistics.median(self.clone_s)

    @property
    def ratio(self) -> float:
        return self.gitpoll_median / self.clone_median


@dataclass
class StartupResult:
    """Interpreter start and imports: what --one-time pays before any git work."""

    gitpoll_version_s: list[float]
    git_version_s: list[float]


def publish_one_time(url: str, target: Path, last_path: str, *, env: dict[str, str]) -> float:
    elapsed = timed_run([*GITPOLL, "--repo", url, "--root", str(target), "--one-time"], env=env)
    if not (target / "current" / last_path).is_file():
        raise BenchError(f"gitpoll --one-time did not publish {last_path}")
    return elapsed


def clone_shallow(url: str, target: Path, last_path: str) -> float:
    elapsed = timed_run(
        ["git", "clone", "--quiet", "--depth", "1", url, str(target)], env=git_env()
    )
    if not (target / last_path).is_file():
        raise BenchError(f"git clone did not write {last_path}")
    return elapsed


def large_repository(bench: Bench, shape: TreeShape) -> tuple[str, int]:
    """The bare repository both tools publish from: its URL and pack size."""
    bare = bench.work / "large.git"
    generate_repository(bare, shape)
    pack_kib = sum(p.stat().st_size for p in (bare / "objects" / "pack").iterdir()) // 1024
    return f"file://{bare}", pack_kib


def measure_large(
    bench: Bench, url: str, pack_kib: int, shape: TreeShape, rounds: int, targets: Path, fs: str
) -> LargeResult:
    """Alternating runs into fresh directories under `targets`. Nothing is
    deleted until all runs are done: ext4 searches past recently deleted
    inodes when it allocates new ones, which made a run that followed a
    10,000-file delete several times slower, whichever tool it was."""
    result = LargeResult(fs, shape.files, pack_kib, rounds)
    tools: list[tuple[str, Callable[[str, Path, str], float], list[float]]] = [
        ("gitpoll", partial(publish_one_time, env=bench.env), result.gitpoll_s),
        ("clone", clone_shallow, result.clone_s),
    ]
    for round_number in range(rounds + 1):
        order = tools if round_number % 2 == 0 else list(reversed(tools))
        for name, run, samples in order:
            # Write back the previous run's files now, not during this one.
            os.sync()
            elapsed = run(url, targets / f"{name}-{round_number}", shape.last_path())
            if round_number > 0:  # round 0 warms the page cache for both
                samples.append(elapsed)
    return result


@contextmanager
def scratch_directory(parent: Path | None, prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as path:
        yield Path(path)


def measure_startup(bench: Bench, runs: int = 5) -> StartupResult:
    return StartupResult(
        gitpoll_version_s=[timed_run([*GITPOLL, "--version"], env=bench.env) for _ in range(runs)],
        git_version_s=[timed_run(["git", "--version"], env=git_env()) for _ in range(runs)],
    )


# -- the report -----------------------------------------------------------------


@dataclass
class Row:
    metric: str
    gitpoll: str
    reference: str
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def cells(self) -> list[str]:
        met = "" if self.met is None else ("yes" if self.met else "NO")
        return [self.metric, self.gitpoll, self.reference, self.goal, met, self.note]


HEADER = ["metric", "gitpoll", "reference", "ratio or goal", "met?", "note"]


def latency_rows(result: LatencyResult) -> list[Row]:
    where = f"({result.transport})"
    rows = []
    for stat in ("p50", "p90", "p99", "max"):
        ours, theirs = getattr(result.gitpoll, stat), getattr(result.git_pull, stat)
        row = Row(f"trigger->published {stat} {where}", f"{ours:.0f} ms", f"{theirs:.0f} ms")
        if stat == "p99":
            row.goal, row.met = f"< {LATENCY_GOAL_MS:.0f} ms", ours < LATENCY_GOAL_MS
        rows.append(row)
    rows[0].note = f"n={result.gitpoll.n}; reference: git pull, best case (+0-60 s with watch)"
    mean = result.gitpoll_mean_sync_ms
    rows[1].note = f"gitpoll's own sync (ls-remote, fetch, checkout, swap): {mean:.0f} ms mean"
    return rows


def idle_rows(result: IdleResult) -> list[Row]:
    where = f"({result.transport})"

    def trips(cost: PollCost) -> str:
        text = f"{cost.round_trips:.1f}"
        return text + (f" ({cost.unauthorized:.0f}x401)" if cost.unauthorized else "")

    ours, fetch, pull = result.gitpoll, result.git_fetch, result.git_pull
    unit = "HTTP requests" if result.transport == "http" else "round trips"
    return [
        Row(
            f"idle poll: {unit} {where}",
            trips(ours),
            f"fetch {trips(fetch)} / pull {trips(pull)}",
            f"{ours.round_trips / pull.round_trips:.2f}x pull",
            ours.round_trips <= fetch.round_trips,
            f"{ours.polls} noop polls; counted from the {result.method}",
        ),
        Row(
            f"idle poll: git processes {where}",
            f"{ours.git_processes:.1f}",
            f"fetch {fetch.git_processes:.1f} / pull {pull.git_processes:.1f}",
            f"{ours.git_processes / pull.git_processes:.2f}x pull",
            None,
            "GIT_TRACE built-in/exec lines and remote helpers",
        ),
        Row(
            f"idle poll: checkouts written {where}",
            str(result.checkouts_created),
            "",
            "0",
            result.checkouts_created == 0
            and result.fetches_by_gitpoll == 0
            and result.published_during_window == 0,
            f"new dirs in .worktrees; git fetch runs: {result.fetches_by_gitpoll}",
        ),
    ]


def memory_row(result: MemoryResult) -> Row:
    ours = result.gitpoll_median_kib / 1024
    return Row(
        "idle RSS (VmRSS, median)",
        f"{ours:.1f} MiB",
        f"{result.loop_median_kib / 1024:.1f} MiB",
        f"< {RSS_GOAL_MIB:.0f} MiB",
        ours < RSS_GOAL_MIB,
        f"reference: sh while-sleep-60 git pull loop (sh + sleep); "
        f"gitpoll peak VmHWM {result.gitpoll_peak_kib / 1024:.1f} MiB",
    )


def large_row(result: LargeResult) -> Row:
    return Row(
        f"publish {result.files} files, {result.filesystem}",
        f"{result.gitpoll_median:.2f} s",
        f"{result.clone_median:.2f} s",
        f"{result.ratio:.2f} (<= {RATIO_GOAL})",
        result.ratio <= RATIO_GOAL,
        f"median of {result.rounds}; gitpoll --one-time vs git clone --depth 1 (file://)",
    )


def startup_row(result: StartupResult) -> Row:
    ours = statistics.median(result.gitpoll_version_s)
    theirs = statistics.median(result.git_version_s)
    return Row(
        "start-up (--version, median)",
        f"{ours:.2f} s",
        f"{theirs:.3f} s",
        note="interpreter + imports, paid by every --one-time run",
    )


def render_table(rows: list[Row]) -> str:
    lines = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def fmt(cells: list[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return " | ".join(padded).rstrip()

    separator = "-+-".join("-" * width for width in widths)
    return "\n".join([fmt(HEADER), separator, *(fmt(cells) for cells in lines[1:])])


def cpu_pressure() -> str | None:
    """The kernel's share of time tasks waited for a CPU: how loaded the
    machine was, which the medians here cannot show."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def machine_info() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "git": git_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gitpoll": version("gitpoll"),
        "loadavg_at_start": os.getloadavg(),
        "cpu_pressure_at_start": cpu_pressure(),
    }


# -- running it all -------------------------------------------------------------


GENERAL_NOTES = [
    "trigger->published reference: git pull started right after the push, the best case "
    "of `watch -n 60 git pull`, which first waits 0-60 s (30 s on average)",
    "percentiles are nearest-rank: p99 of fewer than 100 samples is the largest",
    "disk timings vary with other processes' deletions (ext4 skips recently freed inodes "
    "when it allocates new ones); tmpfs shows each tool's CPU cost alone",
    "round trips on file:// = upload-pack connections + protocol v2 commands, "
    "which is what smart HTTP turns into one request each",
]


@dataclass
class Results:
    latency: list[LatencyResult] = field(default_factory=list)
    idle: list[IdleResult] = field(default_factory=list)
    memory: MemoryResult | None = None
    large: list[LargeResult] = field(default_factory=list)
    startup: StartupResult | None = None
    notes: list[str] = field(default_factory=lambda: list(GENERAL_NOTES))

    def rows(self) -> list[Row]:
        rows = [row for result in self.latency for row in latency_rows(result)]
        rows += [row for result in self.idle for row in idle_rows(result)]
        if self.memory:
            rows.append(memory_row(self.memory))
        rows += [large_row(result) for result in self.large]
        if self.startup:
            rows.append(startup_row(self.startup))
        return rows

    def as_json(self) -> dict[str, object]:
        large = [
            {
                **asdict(result),
                "gitpoll_median_s": result.gitpoll_median,
                "clone_median_s": result.clone_median,
                "ratio": result.ratio,
            }
            for result in self.large
        ]
        return {
            "latency": [asdict(r) for r in self.latency],
            "idle": [asdict(r) for r in self.idle],
            "memory": asdict(self.memory) if self.memory else None,
            "large": large,
            "startup": asdict(self.startup) if self.startup else None,
            "notes": self.notes,
        }


@contextmanager
def optional_http(bench: Bench, wanted: bool, results: Results) -> Iterator[Transport | None]:
    """The smart-HTTP transport when it can be had; otherwise None and a note."""
    if not wanted:
        results.notes.append("smart HTTP skipped (--no-http)")
        yield None
        return
    try:
        transport, stop = http_transport(bench.work, bench.processes)
    except (ImportError, OSError, AssertionError, RuntimeError) as exc:
        results.notes.append(f"smart HTTP not measured: {type(exc).__name__}: {exc}")
        yield None
        return
    try:
        yield transport
    finally:
        stop()


def step(title: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {title}", file=sys.stderr, flush=True)


def run_large(args: argparse.Namespace, bench: Bench, results: Results) -> None:
    shape = TreeShape(directories=100, files_per_directory=args.files // 100)
    url, pack_kib = large_repository(bench, shape)
    places = [(bench.work, "disk")]
    if args.tmpfs and Path(args.tmpfs).is_dir():
        # tmpfs takes the disk out: what is left is each tool's own CPU cost.
        places.append((Path(args.tmpfs), "tmpfs"))
    for parent, filesystem in places:
        step(f"publishing {shape.files} files on {filesystem}: {args.rounds} rounds + 1 warm-up")
        with scratch_directory(parent, "bench-sidecar-large-") as targets:
            results.large.append(
                measure_large(bench, url, pack_kib, shape, args.rounds, targets, filesystem)
            )
    step("start-up time")
    results.startup = measure_startup(bench)


def run_all(args: argparse.Namespace, bench: Bench) -> Results:
    results = Results()
    local = file_transport(bench.work)
    with optional_http(bench, not args.no_http, results) as http:
        for transport in [local] if http is None else [local, http]:
            step(f"trigger latency over {transport.name}: {args.pushes} pushes")
            results.latency.append(measure_latency(bench, transport, args.pushes))
            step(f"idle polls over {transport.name}: {args.idle_seconds:g} s")
            results.idle.append(measure_idle(bench, transport, args.idle_seconds))
    step("idle memory")
    results.memory = measure_memory(bench, local, args.idle_seconds)
    run_large(args, bench, results)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pushes", type=int, default=60, help="pushes timed per transport")
    parser.add_argument("--rounds", type=int, default=5, help="large-repository rounds per tool")
    parser.add_argument("--files", type=int, default=10_000, help="files in the large repository")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="idle window length")
    parser.add_argument("--no-http", action="store_true", help="file:// only")
    parser.add_argument(
        "--tmpfs",
        default="/dev/shm",
        help="also publish the large repository here (a tmpfs); '' to skip",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a goal is missed (for CI)"
    )
    args = parser.parse_args(argv)
    if args.pushes < 1 or args.rounds < 1 or args.files < 100:
        parser.error("--pushes and --rounds must be at least 1, --files at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    machine = machine_info()
    processes = ProcessGroup()
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
        try:
            results = run_all(args, Bench.create(Path(tmp), processes))
        finally:
            processes.stop_all()
    machine["loadavg_at_end"] = os.getloadavg()
    machine["cpu_pressure_at_end"] = cpu_pressure()
    rows = results.rows()
    print(render_table(rows))
    for note in results.notes:
        print(f"note: {note}")
    report = {
        "machine": machine,
        "duration_s": round(time.monotonic() - started, 1),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "table": [dict(zip(HEADER, row.cells(), strict=True)) for row in rows],
        **results.as_json(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON: {args.output}", file=sys.stderr)
    missed = [row.metric for row in rows if row.met is False]
    if missed:
        print(f"goals missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
