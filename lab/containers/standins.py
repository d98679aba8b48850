"""Stand-ins for the official images the Dockerfiles and manifests name.

Where no registry can be reached, `python:3.12-slim`, `httpd:2.4.65` and
`postgres:17.7` cannot be pulled. Each is replaced by a minimal Debian made
with `debootstrap --variant=minbase`, with the Debian packages that do the
same job, and the few paths, users and entry points the official image has
and our Dockerfiles or manifests rely on (written out below, each with its
reason). The Dockerfiles receive the Python one through their `BASE_IMAGE`
build argument; the manifests' third-party images are pointed at the others.

A stand-in's root file system is cached as a tar archive keyed by what goes
into it (the Debian suite, the package list, the files and the set-up
script): debootstrap runs once per machine, or again when one of those
changes. Each run imports the archive into its own podman storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .engine import Podman

SUITE = "bookworm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the way a stand-in is made changes outside the fields hashed below.
FORMAT = 1

# The Debian archive and its security updates, as this machine's apt reaches
# them (read from its sources; DEBIAN_MIRROR overrides the first).
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# In every stand-in, as in the official Debian-based images (debian:*-slim):
# apt sources for the suite with its updates and security archives, and dpkg
# told to leave out documentation and translations, which keeps the apt-get
# installs of our Dockerfiles as lean as they are on the real base.
APT_SOURCES = """\
Types: deb
URIs: {mirror}
Suites: {suite} {suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: {suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
"""
COMMON_FILES = {
    "etc/dpkg/dpkg.cfg.d/docker": (DPKG_EXCLUDES, 0o644),
}
# What debootstrap leaves that a published base image does not have.
COMMON_CLEAN_UP = """\
rm -f /etc/apt/sources.list
rm -rf /var/cache/apt/archives/*.deb /var/cache/apt/*.bin /var/lib/apt/lists/*
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/*
rm -rf /var/log/*.log /var/log/apt/* /tmp/* /var/tmp/*
"""

# -- httpd -------------------------------------------------------------------

# The official httpd image runs its own build from /usr/local/apache2, with
# every module as a modules/*.so file. Debian's apache2 compiles some in
# (mod_unixd, mod_log_config...) and refuses a LoadModule of a compiled-in
# module, which the manifests' httpd.conf (written for the official image)
# has. This `httpd` runs Debian's apache2 on a copy of the -f file without
# those lines. The copy goes to /dev/shm: the manifests make the root file
# system read-only.
HTTPD_WRAPPER = r"""#!/bin/bash
# httpd of the httpd:2.4 stand-in of make test-containers (lab/containers/standins.py).
set -euo pipefail
arguments=("$@")
for ((i = 0; i + 1 < ${#arguments[@]}; i++)); do
    if [[ ${arguments[i]} == -f ]]; then
        built_in=$(/usr/sbin/apache2 -l | sed -n 's/^ *mod_\(.*\)\.c$/\1_module/p' | paste -sd '|')
        copy=$(mktemp /dev/shm/httpd.XXXXXX.conf)
        grep -Ev "^[[:space:]]*LoadModule[[:space:]]+(${built_in})[[:space:]]" \
            "${arguments[i + 1]}" >"$copy" || [[ $? == 1 ]]
        arguments[i + 1]=$copy
    fi
done
exec /usr/sbin/apache2 "${arguments[@]}"
"""
HTTPD_SET_UP = """\
# The official image's layout, on Debian's apache2: ServerRoot
# /usr/local/apache2 with modules/, conf/mime.types and the "It works!" page.
mkdir -p /usr/local/apache2/conf /usr/local/apache2/logs
ln -s /usr/lib/apache2/modules /usr/local/apache2/modules
ln -s /etc/mime.types /usr/local/apache2/conf/mime.types
"""

# -- postgres ----------------------------------------------------------------

# The part of the official image's docker-entrypoint.sh that k8s/ambassador
# relies on, with the same contract: arguments starting with "-" are
# postgres's; on an empty $PGDATA, initdb with the superuser $POSTGRES_USER
# (default postgres) and $POSTGRES_PASSWORD, password (scram-sha-256) logins
# over TCP from anywhere, then a server on the Unix socket only runs
# /docker-entrypoint-initdb.d/*.sh (executed when executable, else sourced)
# and *.sql, and stops; then postgres runs in the foreground. Left out: start
# as root and step down, *_FILE variables, POSTGRES_DB, POSTGRES_INITDB_ARGS.
POSTGRES_ENTRYPOINT = r"""#!/bin/bash
# docker-entrypoint.sh of the postgres stand-in of make test-containers
# (lab/containers/standins.py).
set -Eeo pipefail
if [[ ${1:0:1} == - ]]; then
    set -- postgres "$@"
fi
if [[ $1 == postgres && ! -s $PGDATA/PG_VERSION ]]; then
    export POSTGRES_USER=${POSTGRES_USER:-postgres}
    if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
        echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
    printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    shift
    pg_ctl -D "$PGDATA" -w start \
        -o "$(printf '%q ' "$@") -c listen_addresses='' -p ${PGPORT:-5432}"
    for script in /docker-entrypoint-initdb.d/*; do
        case $script in
        *.sh)
            echo "$0: running $script"
            if [[ -x $script ]]; then "$script"; else . "$script"; fi
            ;;
        *.sql)
            echo "$0: running $script"
            psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password \
                --dbname postgres -f "$script"
            ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
    set -- postgres "$@"
fi
exec "$@"
"""
POSTGRES_SET_UP = """\
# The official image's postgres user is 999:999; the manifest runs as 999.
old_uid=$(id -u postgres)
old_gid=$(id -g postgres)
if getent passwd 999 >/dev/null || getent group 999 >/dev/null; then
    echo "UID or GID 999 is taken in the postgres stand-in" >&2
    exit 1
fi
groupmod --gid 999 postgres
usermod --uid 999 --gid 999 postgres
find / -xdev -uid "$old_uid" -exec chown -h 999 {} +
find / -xdev -gid "$old_gid" -exec chgrp -h 999 {} +
# Like the official image: no cluster made at install, initdb listens
# everywhere, and the directories the manifest mounts over or writes to.
rm -rf /etc/postgresql/* /var/lib/postgresql/* /var/log/postgresql/*
sed -ri 's/^#?(create_main_cluster) .*$/\\1 = false/' /etc/postgresql-common/createcluster.conf
sed -ri "s/^#?(listen_addresses)\\s*=\\s*\\S+.*/\\1 = '*'/" \\
    /usr/share/postgresql/*/postgresql.conf.sample
install -d -o postgres -g postgres -m 1777 /var/lib/postgresql /var/lib/postgresql/data
install -d -o postgres -g postgres -m 3777 /var/run/postgresql
mkdir -p /docker-entrypoint-initdb.d
"""


@dataclass(frozen=True, slots=True)
class StandIn:
    name: str
    replaces: str
    """The official image it stands in for, as the Dockerfiles or manifests name it."""
    packages: tuple[str, ...]
    set_up: str = ""
    """Shell commands run in the new root (chroot) after debootstrap."""
    files: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """Files written into the root before set_up: path -> (content, mode)."""
    config: tuple[str, ...] = ()
    """Image configuration (`podman import --change`)."""

    def key(self) -> str:
        """Everything that goes into the root file system, hashed."""
        recipe = {
            "format": FORMAT,
            "suite": SUITE,
            "packages": sorted(self.packages),
            "set_up": self.set_up,
            "files": {path: [text, mode] for path, (text, mode) in sorted(self.files.items())},
            "common": [COMMON_FILES, COMMON_CLEAN_UP, APT_SOURCES],
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]

    def ref(self) -> str:
        return f"localhost/sidecar-patterns/stand-in-{self.name}:{SUITE}-{self.key()}"

    def archive_name(self) -> str:
        return f"{self.name}-{SUITE}-{self.key()}.tar"


PYTHON = StandIn(
    name="python",
    replaces="python:3.12-slim",
    # python-is-python3: the Dockerfiles run `python -m venv`, as on python:*-slim.
    packages=("python3", "python3-venv", "python-is-python3", "ca-certificates", "netbase"),
    config=(f"ENV PATH={DEFAULT_PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]'),
)
HTTPD = StandIn(
    name="httpd",
    replaces="httpd:2.4.65",
    packages=("apache2-bin", "media-types"),
    set_up=HTTPD_SET_UP,
    files={
        "usr/local/apache2/bin/httpd": (HTTPD_WRAPPER, 0o755),
        "usr/local/apache2/htdocs/index.html": (
            "<html><body><h1>It works!</h1></body></html>\n",
            0o644,
        ),
    },
    config=(
        f"ENV PATH=/usr/local/apache2/bin:{DEFAULT_PATH}",
        "WORKDIR /usr/local/apache2",
        # The official image's graceful stop.
        "STOPSIGNAL SIGWINCH",
        "EXPOSE 80",
    ),
)
POSTGRES = StandIn(
    name="postgres",
    replaces="postgres:17.7",
    # openssl: the official image has it (postgresql-common needs ssl-cert),
    # and the manifest's init script makes the server's certificate with it.
    packages=("postgresql", "openssl"),
    set_up=POSTGRES_SET_UP,
    files={"usr/local/bin/docker-entrypoint.sh": (POSTGRES_ENTRYPOINT, 0o755)},
    config=(
        f"ENV PATH={DEFAULT_PATH}:/usr/lib/postgresql/15/bin",
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV LANG=C.UTF-8",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "STOPSIGNAL SIGINT",
        "EXPOSE 5432",
    ),
)
STAND_INS = (PYTHON, HTTPD, POSTGRES)


class StandInError(Exception):
    """A stand-in could not be made; the message says where its log is."""


@dataclass(frozen=True, slots=True)
class Mirrors:
    debian: str
    security: str


def _source_uris(text: str) -> list[str]:
    """The URIs of an apt sources file, one-line (`deb URI ...`) or deb822 (`URIs:`)."""
    uris: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "deb":
            uris.extend(word for word in words[1:] if "://" in word)
        elif words[0].lower() == "uris:":
            uris.extend(words[1:])
    return uris


def host_mirrors(apt_dir: Path = Path("/etc/apt")) -> Mirrors:
    """The Debian mirrors this machine's apt uses, so the stand-ins download
    the way the machine does; deb.debian.org when it has none."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    uris: list[str] = []
    for path in files:
        if path.suffix in {".list", ".sources"} and path.is_file():
            uris.extend(_source_uris(path.read_text(errors="replace")))
    debian = next((u for u in uris if u.rstrip("/").endswith("/debian")), DEFAULT_MIRROR)
    security = next(
        (u for u in uris if u.rstrip("/").endswith("/debian-security")), DEFAULT_SECURITY_MIRROR
    )
    return Mirrors(os.environ.get("DEBIAN_MIRROR") or debian.rstrip("/"), security.rstrip("/"))


def default_cache_dir() -> Path:
    """SIDECAR_PATTERNS_CACHE, else /var/cache/sidecar-patterns when it can be
    written (as root), else the user's cache directory."""
    if configured := os.environ.get("SIDECAR_PATTERNS_CACHE"):
        return Path(configured)
    system = Path("/var/cache/sidecar-patterns")
    try:
        system.mkdir(parents=True, exist_ok=True)
        if os.access(system, os.W_OK):
            return system
    except OSError:
        pass
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(user_cache) / "sidecar-patterns"


def _run_logged(argv: list[str], log: Path, timeout: float) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            result = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StandInError(f"{argv[0]} did not finish in {timeout:g}s (log: {log})") from None
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])
        raise StandInError(f"{argv[0]} failed (exit {result.returncode}); {log} ends with:\n{tail}")


def make_root_archive(stand_in: StandIn, work: Path, cache: Path, mirrors: Mirrors) -> Path:
    """debootstrap the stand-in's root, set it up, and store it as a tar
    archive in the cache (renamed into place: a half-written archive is never
    taken for a cached one). Returns the archive."""
    root = work / f"root-{stand_in.name}"
    log = work / f"stand-in-{stand_in.name}.log"
    archive = cache / stand_in.archive_name()
    try:
        _run_logged(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(stand_in.packages)}",
                SUITE,
                str(root),
                mirrors.debian,
            ],
            log,
            timeout=900,
        )
        files = {
            **COMMON_FILES,
            "etc/apt/sources.list.d/debian.sources": (
                APT_SOURCES.format(mirror=mirrors.debian, security=mirrors.security, suite=SUITE),
                0o644,
            ),
            **stand_in.files,
        }
        for relative, (text, mode) in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        script = "set -eu\n" + stand_in.set_up + COMMON_CLEAN_UP
        _run_logged(["chroot", str(root), "/bin/sh", "-c", script], log, timeout=300)
        staging = cache / f".{archive.name}.{os.getpid()}.tmp"
        _run_logged(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(staging), "."],
            log,
            timeout=300,
        )
        os.replace(staging, archive)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # Archives of earlier recipes of this stand-in are of no more use.
    for stale in cache.glob(f"{stand_in.name}-{SUITE}-*.tar"):
        if stale != archive:
            stale.unlink(missing_ok=True)
    return archive


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A third-party image in podman's storage: a stand-in, or the official one."""

    name: str
    """As the Dockerfiles and manifests name it (python:3.12-slim)."""
    ref: str
    origin: str
    """Where it came from, for the report."""


def ensure_archives(
    stand_ins: tuple[StandIn, ...], work: Path, cache: Path
) -> dict[str, tuple[Path, float | None]]:
    """Every stand-in's archive, debootstrapped (side by side) only when the
    cache has none for its recipe: name -> (archive, seconds it took to make,
    None when it came from the cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    mirrors = host_mirrors()
    missing = [s for s in stand_ins if not (cache / s.archive_name()).is_file()]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(missing) or 1) as pool:
        list(pool.map(lambda s: make_root_archive(s, work, cache, mirrors), missing))
    took = time.monotonic() - started
    return {s.name: (cache / s.archive_name(), took if s in missing else None) for s in stand_ins}


def import_stand_in(
    podman: Podman, stand_in: StandIn, archive: Path, made_in: float | None
) -> BaseImage:
    """The archive as an image of podman's storage, with its configuration."""
    began = time.monotonic()
    changes = [arg for change in stand_in.config for arg in ("--change", change)]
    podman.run("import", *changes, str(archive), stand_in.ref(), timeout=600)
    took = time.monotonic() - began + (made_in or 0.0)
    how = "from the cache" if made_in is None else "debootstrapped, now cached"
    return BaseImage(
        stand_in.replaces,
        stand_in.ref(),
        f"stand-in: Debian {SUITE} minbase + {' '.join(stand_in.packages)} ({how}; {took:.0f}s)",
    )


def pull_official(podman: Podman, stand_in: StandIn) -> BaseImage:
    """--base-images=official: the image itself, from its registry."""
    began = time.monotonic()
    ref = f"docker.io/library/{stand_in.replaces}"
    podman.run("pull", "--quiet", ref, timeout=900)
    return BaseImage(stand_in.replaces, ref, f"pulled ({time.monotonic() - began:.0f}s)")
