"""Every container of ours, as the manifests run it, parsed by that
program's own `load_config`: a renamed or misspelt flag, a bad value, a
variable the program does not read, or a file the config names but the pod
does not mount fails here instead of in a CrashLoopBackOff.

The pod's files (ConfigMaps, Secrets, volumes) are written under tmp_path at
their mount paths, and the paths in the arguments and config files are
rooted there, so file-valued flags are checked against what the pod really
has.
"""

from __future__ import annotations

import base64
import copy
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pg_ambassador.config import check_files

from .manifests import DOCKERFILES, Container, Doc, all_containers, find, render

OUR_CONTAINERS = [c for c in all_containers() if c.ours]


@dataclass
class Launch:
    """What a container would run: the program's CLI module and its argv."""

    module: ModuleType
    argv: list[str]
    environ: dict[str, str]


def docs_of(container: Container) -> list[Doc]:
    return render(container.where.split(":", 1)[0])


def entrypoint(image_name: str) -> list[str]:
    """The image's ENTRYPOINT, from its Dockerfile."""
    text = DOCKERFILES[image_name].read_text()
    [line] = re.findall(r"^ENTRYPOINT\s+(.+)$", text, re.MULTILINE)
    command: list[str] = json.loads(line)
    return command


def console_script_module(name: str) -> ModuleType:
    [script] = entry_points(group="console_scripts", name=name)
    return importlib.import_module(script.module)


def file_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"pod_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class PodFiles:
    """The container's mounts, materialised under `root`."""

    def __init__(self, container: Container, docs: list[Doc], root: Path) -> None:
        self.root = root
        volumes = {v["name"]: v for v in container.pod.get("volumes", [])}
        mounts = container.spec.get("volumeMounts", [])
        # Longest first, so /a/b is rooted before /a.
        self.mount_paths = sorted((m["mountPath"] for m in mounts), key=len, reverse=True)
        for mount in mounts:
            directory = self.path(mount["mountPath"])
            directory.mkdir(parents=True, exist_ok=True)
            volume = volumes[mount["name"]]
            for name, content in self._volume_files(volume, docs).items():
                (directory / name).write_bytes(content)

    def _volume_files(self, volume: Doc, docs: list[Doc]) -> dict[str, bytes]:
        if "configMap" in volume:
            config_map = find(docs, "ConfigMap", volume["configMap"]["name"])
            assert config_map is not None, volume
            return {k: self.rooted(v).encode() for k, v in config_map.get("data", {}).items()}
        if "secret" in volume:
            secret = find(docs, "Secret", volume["secret"]["secretName"])
            assert secret is not None, volume
            return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
        return {}

    def path(self, pod_path: str) -> Path:
        return self.root / pod_path.lstrip("/")

    def rooted(self, text: str) -> str:
        """`text` with every mount path in it moved under the root."""
        for mount_path in self.mount_paths:
            pattern = r"(?<![^=\s\"'\[,])" + re.escape(mount_path) + r"(?=/|$|[\s\"',\]])"
            local = str(self.path(mount_path)).replace("\\", "\\\\")
            text = re.sub(pattern, local, text, flags=re.M)
        return text


def environment(container: Container, docs: list[Doc]) -> dict[str, str]:
    environ: dict[str, str] = {}
    for variable in container.spec.get("env", []):
        if "value" in variable:
            environ[variable["name"]] = expand(variable["value"], environ)
            continue
        source = variable["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = find(docs, "Secret", ref["name"])
            assert secret is not None, variable
            environ[variable["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            config_map = find(docs, "ConfigMap", ref["name"])
            assert config_map is not None, variable
            environ[variable["name"]] = config_map["data"][ref["key"]]
        else:
            environ[variable["name"]] = f"<{variable['name']}>"
    return environ


def expand(text: str, environ: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values."""
    return re.sub(r"\$\((\w+)\)", lambda m: environ.get(m[1], m[0]), text)


def launch(container: Container, root: Path) -> Launch:
    docs = docs_of(container)
    files = PodFiles(container, docs, root)
    environ = environment(container, docs)
    command = [expand(part, environ) for part in container.spec.get("command", [])]
    args = [files.rooted(expand(part, environ)) for part in container.spec.get("args", [])]
    if not command:
        [program] = entrypoint(container.image_name)
        return Launch(console_script_module(program), args, environ)
    interpreter, script, *rest = command
    assert interpreter == "python", command
    module = file_module(files.path(script))
    return Launch(module, [*rest, *args], environ)


@pytest.mark.parametrize("container", OUR_CONTAINERS, ids=str)
def test_the_program_accepts_its_arguments(container: Container, tmp_path: Path) -> None:
    run = launch(container, tmp_path)
    config = run.module.load_config(run.argv, run.environ)
    if run.module.__name__ == "pg_ambassador.cli":
        # Every credential file the routes name is in the pod.
        check_files(config.settings)


@pytest.mark.parametrize("container", OUR_CONTAINERS, ids=str)
def test_every_variable_is_one_the_program_reads(container: Container, tmp_path: Path) -> None:
    run = launch(container, tmp_path)
    known = run.module.build_parser().environment_variables()
    assert set(run.environ) - known <= _consumed_by_kubernetes(container)


def _consumed_by_kubernetes(container: Container) -> set[str]:
    """Variables used only in $(VAR) expansions of the command line."""
    line = " ".join(container.spec.get("command", []) + container.spec.get("args", []))
    return set(re.findall(r"\$\((\w+)\)", line))


def test_every_program_of_ours_is_covered() -> None:
    programs = {
        (c.image_name, tuple(c.spec.get("command", ())))
        for c in OUR_CONTAINERS  # the app on the ambassador's image counts apart
    }
    assert {name for name, _ in programs} == set(DOCKERFILES)
    assert len(programs) == 4


def _renamed(container: Container, old: str, new: str) -> Container:
    spec: dict[str, Any] = copy.deepcopy(container.spec)
    spec["args"] = [arg.replace(old, new) for arg in spec["args"]]
    spec["env"] = [{**v, "name": v["name"].replace(old, new)} for v in spec.get("env", [])]
    return Container(container.where, container.workload, spec, container.init)


def test_a_renamed_flag_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [gitpoll] = [c for c in OUR_CONTAINERS if c.where.startswith("sidecar: ") and c.native_sidecar]
    run = launch(_renamed(gitpoll, "--period", "--poll-period"), tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run.module.load_config(run.argv, run.environ)
    assert exit_info.value.code == 2
    assert "--poll-period" in capsys.readouterr().err


def test_a_misspelt_variable_is_caught(tmp_path: Path) -> None:
    [gitpoll] = [c for c in OUR_CONTAINERS if c.where.startswith("sidecar: ") and c.native_sidecar]
    renamed = _renamed(gitpoll, "GIT_REPO", "GITREPO")
    run = launch(renamed, tmp_path)
    assert "GITREPO" not in run.module.build_parser().environment_variables()
    with pytest.raises(SystemExit):  # --repo is then missing
        run.module.load_config(run.argv, run.environ)


def test_a_config_naming_a_missing_secret_key_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [ambassador] = [
        c
        for c in OUR_CONTAINERS
        if c.where.startswith("ambassador/overlays/prod") and c.native_sidecar
    ]
    run = launch(ambassador, tmp_path)
    config_file = tmp_path / "etc/pg-ambassador/config.yaml"
    config_file.write_text(config_file.read_text().replace("prod-password", "prod-pasword"))
    with pytest.raises(SystemExit) as exit_info:
        run.module.load_config(run.argv, run.environ)
    assert exit_info.value.code == 2
    assert "prod-pasword" in capsys.readouterr().err
