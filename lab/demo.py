"""`make demo`: the three patterns as local processes, no cluster needed.

    PYTHONPATH=tests .venv/bin/python -m lab.demo              (what make demo runs)
    PYTHONPATH=tests .venv/bin/python -m lab.demo --headless --state-file FILE

It prints each URL and what to try, then runs until Ctrl-C (SIGINT) or
SIGTERM, which stop every process it started, by PID, and remove its
temporary files. --headless prints nothing but writes where everything is
to --state-file (JSON) once all is up: tests drive it that way.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .local import DemoError, Endpoints, LocalStack

EXIT_OK = 0
EXIT_FAILED = 1


def instructions(e: Endpoints) -> str:
    psql = (
        f'psql "host={e.ambassador_host} port={e.ambassador_port} dbname={e.database} user=anyone"'
    )
    return f"""\
Sidecar Patterns: all three patterns, running as local processes.
Temporary files and every log: {e.base_dir}

SIDECAR  gitpoll keeps the page Apache serves in sync with a git repository
  page            {e.page}
  gitpoll         {e.gitpoll}/readyz   {e.gitpoll}/metrics
  try             edit {e.site}/index.html, then
                    git -C {e.site} commit -am "my change"
                  the commit's hook sends gitpoll a signed POST /sync:
                  reload the page, the change is there within a second.

ADAPTER  httpd-adapter turns Apache's status page into Prometheus metrics
  status page     {e.status_page}?auto   (what Apache says)
  metrics         {e.adapter_metrics}   (what Prometheus reads)
  try             curl -s {e.adapter_metrics} | grep -E '^apache_(up|accesses_total|workers)'

AMBASSADOR  the app connects to the ambassador only; it picks the server
  app             {e.app}   (a visit counter: which server answered?)
  ambassador      {e.ambassador_admin}/routes   {e.ambassador_admin}/metrics
  try             {psql} \\
                    -c "select current_setting('cluster_name') as server, current_user"
                  no password: the ambassador logs in as {e.database} for you.

Ctrl-C stops everything and removes the temporary files.
"""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(headless: bool, state_file: Path | None) -> int:
    # SIGTERM ends the demo as Ctrl-C does: through the same clean-up.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    stack = LocalStack()
    try:
        if not headless:
            print("starting gitpoll, Apache, httpd-adapter, PostgreSQL, pg-ambassador, the app…")
        endpoints = stack.start()
        if state_file is not None:
            staging = state_file.with_name(state_file.name + ".tmp")
            staging.write_text(endpoints.to_json())
            os.replace(staging, state_file)
        if not headless:
            print(instructions(endpoints), flush=True)
        threading.Event().wait()  # until a signal interrupts
    except KeyboardInterrupt:
        if not headless:
            print("\nstopping…", flush=True)
        return EXIT_OK
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--headless", action="store_true", help="print nothing; for tests")
    parser.add_argument("--state-file", type=Path, help="write the endpoints here (JSON)")
    args = parser.parse_args(argv)
    return run(args.headless, args.state_file)


if __name__ == "__main__":
    sys.exit(main())
