"""`make test-containers`: python -m lab.containers --help."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .engine import Podman, PodmanError
from .images import build, makefile_images, project_version
from .standins import PYTHON, STAND_INS, StandInError, default_cache_dir, prepare

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
REQUIRED_PROGRAMS = ("podman", "runc", "debootstrap", "git", "kubectl", "tar", "chroot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.containers",
        description="Build the images and play the pods of k8s/ under podman; check them.",
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (reason := refusal()) is not None:
        print(f"test-containers: cannot run: {reason}", file=sys.stderr)
        return EXIT_REFUSED
    state = Path(tempfile.mkdtemp(prefix="sidecar-patterns-containers-", dir="/var/tmp"))
    state.chmod(0o755)
    podman = Podman(state, storage_driver=args.storage_driver)
    cache = (args.cache_dir or default_cache_dir()) / "stand-ins"
    started = time.monotonic()
    try:
        print(f"podman {podman.version()}, state in {state}", flush=True)
        for prepared in prepare(podman, STAND_INS, state, cache):
            how = "cached" if prepared.cached else "made by debootstrap"
            print(
                f"stand-in {prepared.stand_in.replaces}: {prepared.stand_in.ref()} "
                f"({how}, {prepared.seconds:.0f}s)",
                flush=True,
            )
        hello = podman.output("run", "--rm", PYTHON.ref(), "python", "-c", "print('hello')")
        print(f"a container of the Python stand-in says {hello.strip()!r}")
        version = project_version()
        for image in makefile_images():
            built = build(podman, image, version, PYTHON.ref(), state)
            size = f"{built.size_mb:.0f} MB"
            print(f"built {built.ref} ({built.image_id}, {size}) in {built.seconds:.0f}s")
    except (PodmanError, StandInError) as error:
        print(f"test-containers: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    print(f"done in {time.monotonic() - started:.0f}s")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
