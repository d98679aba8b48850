"""The three Dockerfiles as `make images` builds them: from the repository
root, multi-stage on a base given as a build argument, the final stage
without build tools, running the console script as a numeric non-root user.
(Building them needs a container engine: `make images`.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from .manifests import DOCKERFILES, OUR_IMAGES, REPO


@dataclass
class Stage:
    base: str
    lines: list[str]


def stages(path: Path) -> tuple[list[str], list[Stage]]:
    """(instructions before the first FROM, the stages), continuations joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    preamble: list[str] = []
    found: list[Stage] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            found.append(Stage(line.split()[1], []))
        elif found:
            found[-1].lines.append(line)
        else:
            preamble.append(line)
    return preamble, found


IMAGES = sorted(DOCKERFILES)


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_on_the_base_image_argument(image: str) -> None:
    preamble, found = stages(DOCKERFILES[image])
    assert "ARG BASE_IMAGE=python:3.12-slim" in preamble
    assert len(found) >= 2
    assert all(stage.base == "${BASE_IMAGE}" for stage in found)


@pytest.mark.parametrize("image", IMAGES)
def test_the_final_stage(image: str) -> None:
    final = stages(DOCKERFILES[image])[1][-1]
    text = "\n".join(final.lines)
    user = [line for line in final.lines if line.startswith("USER ")]
    assert len(user) == 1 and re.fullmatch(r"USER [1-9]\d*(:\d+)?", user[0]), user
    assert re.search(r"PYTHONUNBUFFERED=1", text)
    assert not re.search(r"build-essential|gcc|\bpip install\b", text), "no build tools"
    assert "COPY --from=" in text, "the final stage copies the built venv"
    [entrypoint] = [line for line in final.lines if line.startswith("ENTRYPOINT ")]
    [script] = re.findall(r'ENTRYPOINT \["([^"]+)"\]', entrypoint)
    package = OUR_IMAGES[image]
    assert [ep.dist.name for ep in entry_points(group="console_scripts", name=script) if ep.dist]
    assert script == package, "the console script of the image's package"


@pytest.mark.parametrize("image", IMAGES)
def test_copies_come_from_the_repository_root(image: str) -> None:
    for stage in stages(DOCKERFILES[image])[1]:
        for line in stage.lines:
            if line.startswith("COPY ") and "--from=" not in line:
                sources = line.split()[1:-1]
                for source in sources:
                    assert (REPO / source).exists(), f"{line}: no {source} in the repository"


def test_the_gitpoll_image_has_git_and_ssh() -> None:
    final = stages(DOCKERFILES["sidecar-patterns/gitpoll"])[1][-1]
    install = " ".join(line for line in final.lines if "apt-get install" in line)
    assert {"git", "openssh-client"} <= set(install.split())


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)
