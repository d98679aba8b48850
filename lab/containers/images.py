"""Our three images, built from their Dockerfiles as `make images` builds
them: from the repository root, the base image given as BASE_IMAGE.

The Dockerfiles stay as users build them. What only this machine needs to
download during a build is mounted into every build step, read-only, by
podman (`podman build -v`), and is never part of an image:

- the host's CA certificates (/etc/ssl/certs): where a TLS-intercepting proxy
  sits between the machine and PyPI, pip trusts it only through them. This
  one is an overlay (`:O`): when apt-get upgrades ca-certificates during a
  build, its script rewrites the directory, which must then be writable;
  what it writes is thrown away with the overlay;
- the host's global pip configuration (/etc/pip.conf, /etc/xdg/pip) and every
  local directory it names (wheelhouses, file:// indexes, constraints), so
  pip inside the build finds packages exactly where pip on the host does;
- the build runs on the host's network (`--network host`), so apt and pip
  reach what the host reaches, through the same resolver.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..patterns import REPO
from .engine import Podman

CA_CERTIFICATES = Path("/etc/ssl/certs")
PIP_CONFIG_FILES = (Path("/etc/pip.conf"), Path("/etc/xdg/pip"))
BUILD_TIMEOUT = 900.0


@dataclass(frozen=True, slots=True)
class OurImage:
    name: str
    folder: str
    """Its service's folder: the Dockerfile is there, the build context is the root."""

    @property
    def dockerfile(self) -> Path:
        return REPO / self.folder / "Dockerfile"

    def ref(self, version: str) -> str:
        """As `make images` tags it (fully qualified, as podman files it)."""
        return f"docker.io/sidecar-patterns/{self.name}:{version}"

    def manifest_name(self, version: str) -> str:
        """As the manifests name it."""
        return f"sidecar-patterns/{self.name}:{version}"


def makefile_images() -> tuple[OurImage, ...]:
    """The Makefile's IMAGES (name:folder pairs): one list of our images."""
    text = (REPO / "Makefile").read_text()
    match = re.search(r"^IMAGES := (.+)$", text, re.MULTILINE)
    if match is None:
        raise ValueError("no IMAGES := in the Makefile")
    return tuple(OurImage(*pair.split(":", 1)) for pair in match[1].split())


def project_version() -> str:
    match = re.search(r"^VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    if match is None:
        raise ValueError("no VERSION := in the Makefile")
    return match[1]


def pip_local_paths() -> list[Path]:
    """Local paths the host's pip configuration names (find-links, file://
    indexes, constraints, cert), as `pip config list` reports them."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    paths: set[Path] = set()
    for line in listing.splitlines():
        _, _, value = line.partition("=")
        for word in value.strip().strip("'\"").split():
            candidate = word.removeprefix("file://")
            if candidate.startswith("/"):
                path = Path(candidate)
                # An index URL names .../simple; mount the whole tree it is part of.
                paths.add(path.parent if path.name == "simple" else path)
    return sorted(path for path in paths if path.exists())


def build_mounts() -> list[str]:
    """`-v` options for what the builds need from this machine (see above)."""
    mounts = {CA_CERTIFICATES: "O"}
    for source in [*PIP_CONFIG_FILES, *pip_local_paths()]:
        if source.exists() and not any(source.is_relative_to(m) for m in mounts):
            mounts[source] = "ro"
    return [option for path, mode in mounts.items() for option in ("-v", f"{path}:{path}:{mode}")]


@dataclass(frozen=True, slots=True)
class Built:
    image: OurImage
    ref: str
    image_id: str
    size_mb: float
    seconds: float
    log: Path


def build(podman: Podman, image: OurImage, version: str, base_image: str, logs: Path) -> Built:
    ref = image.ref(version)
    log = logs / f"build-{image.name}.log"
    started = time.monotonic()
    podman.to_log(
        log,
        "build",
        "--pull=never",
        "--network=host",
        *build_mounts(),
        f"--file={image.dockerfile}",
        f"--build-arg=BASE_IMAGE={base_image}",
        f"--tag={ref}",
        str(REPO),
        timeout=BUILD_TIMEOUT,
    )
    took = time.monotonic() - started
    inspected = podman.json("image", "inspect", ref)[0]
    return Built(image, ref, str(inspected["Id"])[:12], int(inspected["Size"]) / 1e6, took, log)
