"""`make test-containers`: python -m lab.containers --help."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import adapter, ambassador, sidecar
from .engine import Podman, PodmanError
from .images import build, makefile_images, project_version
from .manifests import ManifestError
from .pods import Pods
from .report import EXPECTED_FAILURES, Report
from .session import Session
from .standins import PYTHON, STAND_INS, StandInError, default_cache_dir, prepare

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
REQUIRED_PROGRAMS = ("podman", "runc", "debootstrap", "git", "kubectl", "tar", "chroot")
PATTERNS: dict[str, Callable[[Session], Report]] = {
    "init-container": sidecar.run_init_container,
    "sidecar": sidecar.run_native,
    "sidecar-classic": sidecar.run_classic,
    "adapter": adapter.run,
    "ambassador": ambassador.run,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.containers",
        description="Build the three images from their Dockerfiles and play the pods of k8s/ "
        "with podman kube play; check each pattern end to end.",
    )
    parser.add_argument(
        "--pattern",
        action="append",
        choices=sorted(PATTERNS),
        help="only this pattern (repeatable; default: all)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where the stand-in base images are cached (default: $SIDECAR_PATTERNS_CACHE, "
        "else /var/cache/sidecar-patterns as root, else ~/.cache/sidecar-patterns)",
    )
    parser.add_argument(
        "--storage-driver",
        choices=("overlay", "vfs"),
        default="overlay",
        help="podman's storage driver (vfs where the kernel has no overlayfs there)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the pods running and the state directory in place, to look around",
    )
    return parser


def refusal() -> str | None:
    if os.geteuid() != 0:
        return "needs root (rootful podman, debootstrap): run it as root or with sudo"
    missing = [program for program in REQUIRED_PROGRAMS if shutil.which(program) is None]
    if missing:
        return f"{', '.join(missing)} not installed (make test-containers installs them)"
    return None


def mounts_under(directory: Path) -> list[str]:
    """Mount points below `directory` (none must be left when it is removed)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point == str(directory) or mount_point.startswith(f"{directory}/"):
            found.append(mount_point)
    return found


def prepare_images(podman: Podman, state: Path, cache: Path) -> Session:
    print("\n== images", flush=True)
    began = time.monotonic()
    prepared = prepare(podman, STAND_INS, state, cache)
    for p in prepared:
        how = "from the cache" if p.cached else "debootstrapped, now cached"
        print(f"stand-in  {p.stand_in.replaces}: {p.stand_in.ref()} ({how}; {p.seconds:.0f}s)")
    print(f"          cache: {cache}")
    built = {}
    version = project_version()
    for image in makefile_images():
        result = build(podman, image, version, PYTHON.ref(), state)
        built[image.manifest_name(version)] = result
        print(
            f"built     {result.ref} from {image.folder}/Dockerfile "
            f"({result.size_mb:.0f} MB, {result.seconds:.0f}s)",
            flush=True,
        )
    print(f"          images ready in {time.monotonic() - began:.0f}s", flush=True)
    return Session(
        podman=podman,
        pods=Pods(podman, state),
        state=state,
        built=built,
        stand_ins={p.stand_in.replaces: p for p in prepared},
        base_image=PYTHON.ref(),
    )


def run_pattern(name: str, session: Session) -> Report:
    began = time.monotonic()
    try:
        report = PATTERNS[name](session)
    except EXPECTED_FAILURES as error:
        report = Report(name, "k8s/")
        report.record("could run its pods", False, str(error))
    print(f"          {name}: {time.monotonic() - began:.0f}s", flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (reason := refusal()) is not None:
        print(f"test-containers: cannot run: {reason}", file=sys.stderr)
        return EXIT_REFUSED
    started = time.monotonic()
    state = Path(tempfile.mkdtemp(prefix="sidecar-patterns-containers-", dir="/var/tmp"))
    state.chmod(0o755)
    podman = Podman(state, storage_driver=args.storage_driver)
    cache = (args.cache_dir or default_cache_dir()) / "stand-ins"
    reports: list[Report] = []
    session: Session | None = None
    try:
        print(f"make test-containers: podman {podman.version()}, state in {state}", flush=True)
        session = prepare_images(podman, state, cache)
        session.pods.create_network()
        for name in args.pattern or list(PATTERNS):
            reports.append(run_pattern(name, session))
    except (PodmanError, StandInError, ManifestError) as error:
        print(f"test-containers: {error}", file=sys.stderr)
        reports.append(Report("images", "Dockerfiles"))
        reports[-1].record("the images could be made", False, str(error))
    finally:
        if args.keep:
            print(f"\nleft running (--keep); to look: {podman.shell_env()}; podman pod ps")
        else:
            clean_up(session, podman, state)
    print("\n== summary")
    for report in reports:
        print(report.summary())
    print(f"make test-containers: {time.monotonic() - started:.0f}s", flush=True)
    return EXIT_OK if reports and all(r.passed for r in reports) else EXIT_FAILED


def clean_up(session: Session | None, podman: Podman, state: Path) -> None:
    """Remove exactly what the run made: its pods, volumes, secrets and
    network by name, then its state directory (storage included)."""
    pods = session.pods if session is not None else Pods(podman, state)
    problems = pods.remove_all()
    for problem in problems:
        print(f"clean-up: {problem}", file=sys.stderr)
    # The overlay driver keeps its directory mounted on itself (private)
    # after its last container is gone; that mount is the storage's own.
    own = state / "storage" / "overlay"
    if mounts_under(state) == [str(own)]:
        subprocess.run(["umount", str(own)], capture_output=True, check=False, timeout=60)
    left = mounts_under(state)
    if left:
        print(f"clean-up: {state} kept, still mounted: {', '.join(left)}", file=sys.stderr)
    else:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
