"""`make test-containers`: python -m lab.containers --help."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from . import adapter, ambassador, sidecar
from .engine import Podman, PodmanError
from .images import build, makefile_images, project_version
from .manifests import ManifestError
from .pods import Pods
from .report import EXPECTED_FAILURES, Report
from .session import Session
from .standins import (
    PYTHON,
    STAND_INS,
    BaseImage,
    StandIn,
    StandInError,
    default_cache_dir,
    ensure_archives,
    import_stand_in,
    pull_official,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
STATE_PREFIX = "sidecar-patterns-containers-"
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
        "--base-images",
        choices=("stand-ins", "official"),
        default="stand-ins",
        help="stand-ins: python, httpd and postgres made from Debian packages (no registry "
        "needed; the default); official: pull python:3.12-slim, httpd:2.4.65 and "
        "postgres:17.7 from Docker Hub",
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
    parser.add_argument(
        "--remove",
        metavar="STATE",
        type=Path,
        help="only remove what a run kept (--keep) or left when interrupted: its pods, "
        "volumes, secrets and network by name, then its state directory",
    )
    return parser


def refusal() -> str | None:
    if os.geteuid() != 0:
        return "needs root (rootful podman, debootstrap): run it as root or with sudo"
    missing = [program for program in REQUIRED_PROGRAMS if shutil.which(program) is None]
    if "kubectl" in missing:
        return "kubectl renders the manifests: see https://kubernetes.io/docs/tasks/tools/"
    if missing:
        return (
            f"{', '.join(missing)} not installed: apt-get install podman runc debootstrap git "
            "(make test-containers does it)"
        )
    return None


def mounts_under(directory: Path) -> list[str]:
    """Mount points below `directory` (none must be left when it is removed)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point == str(directory) or mount_point.startswith(f"{directory}/"):
            found.append(mount_point)
    return found


def prepare_images(podman: Podman, pods: Pods, state: Path, cache: Path, official: bool) -> Session:
    """The base images in and our images built. The builds start as soon as
    the Python base is in, side by side with each other and with the other
    imports (they mostly wait on downloads and unpacking)."""
    print("\n== images", flush=True)
    began = time.monotonic()
    if official:

        def fetch(stand_in: StandIn) -> BaseImage:
            return pull_official(podman, stand_in)

    else:
        archives = ensure_archives(STAND_INS, state, cache)

        def fetch(stand_in: StandIn) -> BaseImage:
            return import_stand_in(podman, stand_in, *archives[stand_in.name])

    bases = [fetch(PYTHON)]
    others = [s for s in STAND_INS if s is not PYTHON]
    version = project_version()
    images = makefile_images()
    base_image = bases[0].ref
    with ThreadPoolExecutor(max_workers=len(others) + len(images)) as pool:
        more = [pool.submit(fetch, stand_in) for stand_in in others]
        builds = [pool.submit(build, podman, image, version, base_image, state) for image in images]
        bases += [future.result() for future in more]
        results = [future.result() for future in builds]
    for base in bases:
        print(f"base      {base.name}: {base.ref}, {base.origin}")
    if not official:
        print(f"          stand-ins cached in {cache}")
    built = {}
    for image, result in zip(images, results, strict=True):
        built[image.manifest_name(version)] = result
        print(
            f"built     {result.ref} from {image.folder}/Dockerfile "
            f"({result.size_mb:.0f} MB, {result.seconds:.0f}s)",
            flush=True,
        )
    print(f"          images ready in {time.monotonic() - began:.0f}s", flush=True)
    return Session(
        podman=podman,
        pods=pods,
        state=state,
        built=built,
        bases={base.name: base for base in bases},
        base_image=base_image,
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
    if args.remove is not None:
        return remove(args.remove, args.storage_driver)
    # SIGTERM (a CI timeout) ends the run as Ctrl-C does: through the clean-up.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX, dir="/var/tmp"))
    state.chmod(0o755)
    podman = Podman(state, storage_driver=args.storage_driver)
    cache = (args.cache_dir or default_cache_dir()) / "stand-ins"
    reports: list[Report] = []
    pods = Pods(podman, state)
    try:
        print(f"make test-containers: podman {podman.version()}, state in {state}", flush=True)
        session = prepare_images(
            podman, pods, state, cache, official=args.base_images == "official"
        )
        pods.create_network()
        for name in args.pattern or list(PATTERNS):
            reports.append(run_pattern(name, session))
    except (PodmanError, StandInError, ManifestError) as error:
        print(f"test-containers: {error}", file=sys.stderr)
        reports.append(Report("images", "Dockerfiles"))
        reports[-1].record("the images could be made", False, str(error))
    except KeyboardInterrupt:
        reports.append(Report("interrupted", "-"))
        reports[-1].record("the run could finish", False, "interrupted")
    finally:
        if args.keep:
            print(
                f"\nleft running (--keep); to look: {podman.shell_env()}; podman pod ps\n"
                f"to remove: {sys.executable} -m lab.containers --remove {state}"
            )
        else:
            clean_up(pods, state)
    print("\n== summary")
    for report in reports:
        print(report.summary())
    print(f"make test-containers: {time.monotonic() - started:.0f}s", flush=True)
    return EXIT_OK if reports and all(r.passed for r in reports) else EXIT_FAILED


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def clean_up(pods: Pods, state: Path) -> None:
    """Remove exactly what the run made: its pods, volumes, secrets and
    network by name, then its state directory (storage included)."""
    for problem in pods.remove_all():
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


def remove(state: Path, storage_driver: str) -> int:
    """--remove STATE: what a kept or interrupted run made, and its directory."""
    state = state.resolve()
    if not state.name.startswith(STATE_PREFIX) or not (state / "containers.conf").is_file():
        print(f"test-containers: {state} is not a state directory of this check", file=sys.stderr)
        return EXIT_REFUSED
    # The driver it was made with: podman refuses to open it with another.
    driver = re.search(r'^driver = "(\w+)"', (state / "storage.conf").read_text(), re.M)
    podman = Podman(state, storage_driver=driver[1] if driver else storage_driver)
    clean_up(Pods.recorded(podman, state), state)
    return EXIT_FAILED if state.exists() else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
