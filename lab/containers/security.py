"""Does every container run as the manifest says? Read from the kernel, for
each container's main process (/proc/<pid> on the host): its user and group,
whether its root file system is mounted read-only, its effective
capabilities and no_new_privs. What to expect comes from the manifest as
users apply it (the render before adaptation): the container's
securityContext, else the pod's, else the image's USER."""

from __future__ import annotations

from pathlib import Path

from ..verify import CheckFailed
from .engine import Podman
from .manifests import Doc, containers, pod_spec
from .pods import Pod, container_state


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def root_mount_options(pid: int) -> set[str]:
    """The options of the process's root mount, as its mount namespace has it."""
    options: set[str] = set()
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            options = set(fields[5].split(","))  # the last mount on / wins
    if not options:
        raise CheckFailed(f"no root mount in /proc/{pid}/mountinfo")
    return options


def _image_user(podman: Podman, image: str) -> tuple[int | None, int | None]:
    user = str(podman.json("image", "inspect", image)[0]["Config"].get("User") or "0")
    uid, _, gid = user.partition(":")
    return (
        int(uid) if uid.isdigit() else None,
        int(gid) if gid.isdigit() else None,
    )


def expected_identity(
    workload: Doc, container: Doc, image_user: tuple[int | None, int | None]
) -> tuple[int | None, int | None]:
    """(uid, gid) the container must run as: its securityContext, else the
    pod's, else the image's USER (None: the manifest leaves it to a name)."""
    pod_context = pod_spec(workload).get("securityContext", {})
    context = container.get("securityContext", {})
    uid = context.get("runAsUser", pod_context.get("runAsUser", image_user[0]))
    gid = context.get("runAsGroup", pod_context.get("runAsGroup", image_user[1]))
    return uid, gid


def check_container(podman: Podman, workload: Doc, container: Doc, podman_name: str) -> str:
    """One running container against its manifest; a short summary."""
    state = container_state(podman, podman_name)
    if not state.get("Running"):
        raise CheckFailed(f"{container['name']} is not running ({state.get('Status')})")
    pid = int(state["Pid"])
    status = _status(pid)
    uid = int(status["Uid"].split()[1])  # effective
    gid = int(status["Gid"].split()[1])
    image = podman.json("container", "inspect", podman_name)[0]["ImageName"]
    want_uid, want_gid = expected_identity(workload, container, _image_user(podman, str(image)))
    name = container["name"]
    problems = []
    if uid == 0:
        problems.append("runs as root")
    if want_uid is not None and uid != want_uid:
        problems.append(f"uid {uid}, the manifest says {want_uid}")
    if want_gid is not None and gid != want_gid:
        problems.append(f"gid {gid}, the manifest says {want_gid}")
    context = container.get("securityContext", {})
    read_only = "ro" in root_mount_options(pid)
    if context.get("readOnlyRootFilesystem") and not read_only:
        problems.append("/ is writable, the manifest says read-only")
    if "ALL" in context.get("capabilities", {}).get("drop", []) and int(status["CapEff"], 16):
        problems.append(f"has capabilities {status['CapEff']}, the manifest drops ALL")
    if context.get("allowPrivilegeEscalation") is False and status.get("NoNewPrivs") != "1":
        problems.append("can gain privileges (no_new_privs is off)")
    if problems:
        raise CheckFailed(f"{name}: " + "; ".join(problems))
    return f"{name} {uid}:{gid}{' ro' if read_only else ''}"


def check_finished(podman: Podman, workload: Doc, container: Doc, podman_name: str) -> str:
    """An init container that has run: how podman ran it, from its configuration."""
    info = podman.json("container", "inspect", podman_name)[0]
    user = str(info["Config"].get("User") or "0")
    uid_text, _, gid_text = user.partition(":")
    want_uid, want_gid = expected_identity(
        workload, container, _image_user(podman, str(info["ImageName"]))
    )
    problems = []
    if not uid_text.isdigit() or int(uid_text) == 0:
        problems.append(f"ran as {user!r}")
    elif want_uid is not None and int(uid_text) != want_uid:
        problems.append(f"ran as uid {uid_text}, the manifest says {want_uid}")
    if want_gid is not None and gid_text and int(gid_text) != want_gid:
        problems.append(f"ran as gid {gid_text}, the manifest says {want_gid}")
    context = container.get("securityContext", {})
    if context.get("readOnlyRootFilesystem") and not info["HostConfig"].get("ReadonlyRootfs"):
        problems.append("/ was writable, the manifest says read-only")
    if problems:
        raise CheckFailed(f"{container['name']}: " + "; ".join(problems))
    read_only = " ro" if info["HostConfig"].get("ReadonlyRootfs") else ""
    return f"{container['name']} {user}{read_only} (init, ran)"


def check_pod(podman: Podman, workload: Doc, pod: Pod) -> str:
    """Every container of the workload's pod: the running ones from the
    kernel, init containers that ran to completion from podman's record."""
    spec = pod_spec(workload)
    seen = []
    for container in containers(spec):
        name = pod.container(container["name"])
        finished_init = container in spec.get("initContainers", []) and (
            container.get("restartPolicy") != "Always"
        )
        if finished_init:
            seen.append(check_finished(podman, workload, container, name))
        else:
            seen.append(check_container(podman, workload, container, name))
    return ", ".join(seen)
