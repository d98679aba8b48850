"""k8s/ambassador under podman: two PostgreSQL servers (the StatefulSet),
and the visit counter app reaching them only through pg-ambassador, a
native sidecar, on localhost:5432; the dev and prod overlays."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..verify import CheckFailed, metric_value
from . import security
from .manifests import (
    Adapted,
    Doc,
    add_host_aliases,
    container,
    find,
    kustomize,
)
from .pods import (
    Pod,
    http_get,
    resolve_port,
    started_at,
    wait_for,
    wait_for_startup_probe,
)
from .report import Report
from .session import Session, check_probes, check_scrape_annotations, get_text, stops_cleanly

OVERLAYS = "ambassador/overlays"
APP = "visit-counter"
ROUTE_CONFIG = "pg-ambassador"
SERVERS = "postgres"


def app_docs(docs: list[Doc]) -> list[Doc]:
    """The app's Deployment, with the ConfigMaps (podman reads them from the same file)."""
    return [d for d in docs if d["kind"] == "ConfigMap" or d["metadata"]["name"] == APP]


def server_docs(docs: list[Doc]) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] in ("ConfigMap", "PersistentVolumeClaim")
        or (d["kind"] == "Pod" and d["metadata"]["name"].startswith(f"{SERVERS}-"))
    ]


def only_the_route_differs(dev: list[Doc], prod: list[Doc]) -> str:
    def by_key(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    dev_docs, prod_docs = by_key(dev), by_key(prod)
    if dev_docs.keys() != prod_docs.keys():
        raise CheckFailed(f"different objects: {sorted(dev_docs.keys() ^ prod_docs.keys())}")
    differ = sorted(f"{k} {n}" for (k, n) in dev_docs if dev_docs[(k, n)] != prod_docs[(k, n)])
    if differ != [f"ConfigMap {ROUTE_CONFIG}"]:
        raise CheckFailed(f"the overlays differ in: {', '.join(differ) or 'nothing'}")
    return f"{len(dev_docs)} objects, ConfigMap {ROUTE_CONFIG} the only difference"


def visit(url: str) -> dict[str, Any]:
    status, body = http_get(f"{url}/json", timeout=10)
    answer: dict[str, Any] = json.loads(body)
    if status != 200 or "error" in answer:
        raise CheckFailed(f"the app answered {status}: {answer}")
    return answer


def expect_visit(url: str, server: str, database: str, tls: bool) -> dict[str, Any]:
    """A visit answered by `server`/`database` (as the server itself reports
    it), with the ambassador's leg encrypted or not."""
    answer = visit(url)
    if (answer["server"], answer["database"], answer["tls"]) != (server, database, tls):
        raise CheckFailed(
            f"answered by {answer['server']}/{answer['database']}, TLS {answer['tls']}; "
            f"the route says {server}/{database}, TLS {tls}"
        )
    return answer


def route_of(docs: list[Doc]) -> tuple[str, str, bool]:
    """(server pod, database, TLS) the overlay's ConfigMap routes `visits` to."""
    config = yaml.safe_load(find(docs, "ConfigMap", ROUTE_CONFIG)["data"]["config.yaml"])
    route = config["routes"]["visits"]
    [server] = route["servers"]
    return server.split(".")[0], route["database"], route.get("tls", "disable") != "disable"


class Ambassador:
    """The pattern's pods and what the checks need to reach them."""

    def __init__(self, session: Session, report: Report) -> None:
        self.session = session
        self.report = report
        self.dev = kustomize(f"{OVERLAYS}/dev")
        self.prod = kustomize(f"{OVERLAYS}/prod")
        self.workload = find(self.dev, "Deployment", APP)
        self.servers = find(self.dev, "StatefulSet", SERVERS)
        self.server_pods: dict[str, Pod] = {}
        self.addresses: dict[str, str] = {}
        self.app: Pod | None = None
        self.app_ip = ""
        self.app_url = ""
        self.admin_url = ""

    def adapt(self, docs: list[Doc]) -> Adapted:
        return self.session.adapt(docs)

    def play_servers(self) -> Adapted:
        adapted = self.adapt(self.dev)
        self.report.adapted(adapted.notes)
        for name, data in adapted.secrets.items():
            self.session.pods.create_secret(name, data)
        for pod in self.session.pods.play("ambassador-servers", server_docs(adapted.docs)):
            self.server_pods[pod.name] = pod
            ip = self.session.pods.ip(pod)
            service = self.servers["spec"]["serviceName"]
            self.addresses[f"{pod.name}.{service}"] = ip
        self.report.run(
            "pods "
            + ", ".join(f"{name} ({ip})" for name, ip in sorted(self.addresses.items()))
            + ": PostgreSQL, the StatefulSet's two servers"
        )
        return adapted

    def servers_ready(self) -> str:
        postgres = container(self.servers, SERVERS)
        seen = []
        for name, pod in sorted(self.server_pods.items()):
            ip = self.addresses[f"{name}.{self.servers['spec']['serviceName']}"]
            _, seconds, _ = wait_for_startup_probe(
                self.session.podman, ip, pod.container(SERVERS), postgres, postgres["startupProbe"]
            )
            query = (
                "select current_setting('cluster_name'), current_setting('ssl'), "
                "string_agg(datname, ',' order by datname) from pg_database "
                "where datname like 'visits%'"
            )
            row = self.session.podman.output(
                "exec", pod.container(SERVERS), "psql", "-U", "postgres", "-Atc", query
            ).strip()
            cluster, ssl, databases = row.split("|")
            if (cluster, ssl, databases) != (name, "on", "visits_dev,visits_prod"):
                raise CheckFailed(f"{name}: cluster_name, ssl, databases = {row}")
            seen.append(f"{name} in {seconds:.0f}s")
        return "; ".join(seen) + ": cluster_name its own, ssl on, visits_dev and visits_prod"

    def play_app(self, docs: list[Doc]) -> str:
        """Play the app's pod; pg-ambassador alone first, then the app once
        its startup probe passes. Returns what happened."""
        adapted = self.adapt(docs)
        add_host_aliases(adapted, self.addresses, APP)
        [pod] = self.session.pods.play("ambassador-app", app_docs(adapted.docs), start=False)
        self.app = pod
        workload = find(docs, "Deployment", APP)
        ambassador = container(workload, "pg-ambassador")
        app = container(workload, "app")
        self.session.podman.run("start", pod.container("pg-ambassador"))
        ip = self.session.pods.ip(pod)
        attempts, seconds, seen = wait_for_startup_probe(
            self.session.podman,
            ip,
            pod.container("pg-ambassador"),
            ambassador,
            ambassador["startupProbe"],
        )
        self.session.podman.run("pod", "start", pod.name)
        self.app_ip = ip
        self.app_url = f"http://{ip}:{resolve_port(app, 'http')}"
        self.admin_url = f"http://{ip}:{resolve_port(ambassador, 'admin')}"
        wait_for(lambda: http_get(f"{self.app_url}/healthz")[0] == 200, 60, "the app to serve")
        return f"{seen} after {seconds:.1f}s (attempt {attempts}); the app started then"

    def sessions(self) -> float:
        """Client sessions pg-ambassador admitted to the route (its series
        appears with the first one)."""
        metrics = get_text(f"{self.admin_url}/metrics")
        series = ("pg_ambassador_client_connections_total", 'route="visits"')
        return metric_value(metrics, *series) if "{".join(series) in metrics else 0.0

    def through_localhost(self) -> str:
        assert self.app is not None
        env = self.session.podman.json("container", "inspect", self.app.container("app"))[0][
            "Config"
        ]["Env"]
        urls = [e.split("=", 1)[1] for e in env if e.startswith("DATABASE_URL=")]
        if not urls or "@localhost:5432/" not in urls[0]:
            raise CheckFailed(f"the app's DATABASE_URL is {urls}")
        server, database, tls = route_of(self.dev)
        before = self.sessions()
        first = wait_for(lambda: expect_visit(self.app_url, server, database, tls), 60, "a visit")
        second = expect_visit(self.app_url, server, database, tls)
        relayed = self.sessions() - before
        if second["visit"] <= first["visit"] or relayed < 2:
            raise CheckFailed(f"visits {first['visit']}, {second['visit']}; {relayed:g} sessions")
        leg = "TLS" if tls else "plaintext"
        return (
            f"{urls[0]}: visits {first['visit']} and {second['visit']} answered by "
            f"{server}/{database} as {second['db_user']}, {leg}; {relayed:g} sessions relayed"
        )

    def no_password_in_the_app(self, adapted: Adapted) -> str:
        assert self.app is not None
        info = self.session.podman.json("container", "inspect", self.app.container("app"))[0]
        secrets = {
            base64.b64decode(value).decode()
            for data in adapted.secrets.values()
            for value in data.values()
        }
        visible = " ".join(info["Config"]["Env"] + info["Config"]["Cmd"] + info["Args"])
        leaked = [s for s in secrets if s and s in visible]
        mounted = [m["Destination"] for m in info["Mounts"] if "secret" in m["Source"]]
        if leaked or mounted:
            raise CheckFailed(f"the app sees credentials: {len(leaked)} in its env, {mounted}")
        return f"none of the {len(secrets)} secret values in its environment or arguments"

    def switch_in_place(self) -> str:
        """The prod overlay's route, written over the dev one as the kubelet
        updates a mounted ConfigMap (a new file renamed into place)."""
        assert self.app is not None
        ambassador = self.app.container("pg-ambassador")
        began = started_at(self.session.podman, ambassador)
        volume = self.session.podman.json("volume", "inspect", ROUTE_CONFIG)[0]["Mountpoint"]
        config = find(self.prod, "ConfigMap", ROUTE_CONFIG)["data"]["config.yaml"]
        staging = Path(volume) / ".config.yaml.new"
        staging.write_text(config)
        staging.chmod(0o644)
        os.replace(staging, Path(volume) / "config.yaml")
        server, database, tls = route_of(self.prod)
        answer = wait_for(
            lambda: expect_visit(self.app_url, server, database, tls), 30, "the prod route"
        )
        reloads = metric_value(
            get_text(f"{self.admin_url}/metrics"),
            "pg_ambassador_config_reloads_total",
            'result="success"',
        )
        if started_at(self.session.podman, ambassador) != began:
            raise CheckFailed("pg-ambassador was restarted")
        return (
            f"visit {answer['visit']} answered by {server}/{database} over TLS; "
            f"pg-ambassador reloaded ({reloads:g}), not restarted"
        )

    def prod_from_scratch(self) -> str:
        started = self.play_app(self.prod)
        server, database, tls = route_of(self.prod)
        answer = wait_for(lambda: expect_visit(self.app_url, server, database, tls), 60, "a visit")
        return f"{started}; visit {answer['visit']} answered by {server}/{database}, TLS {tls}"

    def probes(self) -> str:
        assert self.app is not None
        checked = [check_probes(self.session, self.workload, self.app, self.app_ip)]
        for name, pod in sorted(self.server_pods.items()):
            ip = self.addresses[f"{name}.{self.servers['spec']['serviceName']}"]
            checked.append(f"{name}: " + check_probes(self.session, self.servers, pod, ip))
        return "; ".join(checked)

    def stop(self) -> str:
        assert self.app is not None
        stopped = [
            f"{self.app.name}: " + stops_cleanly(self.session.podman, self.workload, self.app)
        ]
        for name, pod in sorted(self.server_pods.items()):
            stopped.append(f"{name}: " + stops_cleanly(self.session.podman, self.servers, pod))
        return "; ".join(stopped)

    def users(self) -> str:
        assert self.app is not None
        checked = [security.check_pod(self.session.podman, self.workload, self.app)]
        for name, pod in sorted(self.server_pods.items()):
            checked.append(f"{name}: " + security.check_pod(self.session.podman, self.servers, pod))
        return "; ".join(checked)


def run(session: Session) -> Report:
    report = Report("ambassador", f"k8s/{OVERLAYS}/dev and prod")
    report.heading("the app reaches PostgreSQL only through pg-ambassador on localhost")
    pattern = Ambassador(session, report)
    session.report_images(report, pattern.dev)
    report.check(
        "the overlays differ only in the ambassador's route",
        lambda: only_the_route_differs(pattern.dev, pattern.prod),
    )
    adapted = pattern.play_servers()
    if not report.check(
        "both PostgreSQL servers start and run the init script", pattern.servers_ready
    ):
        return report
    if not report.check(
        "pg-ambassador starts first; the app once its startup probe passes",
        lambda: pattern.play_app(pattern.dev),
    ):
        return report
    assert pattern.app is not None
    report.run(
        f"pod {pattern.app.name} ({pattern.app_ip}): pg-ambassador alone until its startup "
        "probe passes, then the app; the servers' names as hostAliases"
    )
    report.check(
        "the app reaches PostgreSQL through localhost:5432, where the dev route says",
        pattern.through_localhost,
    )
    report.check(
        "the app holds no database credentials", lambda: pattern.no_password_in_the_app(adapted)
    )
    report.check(
        "switching to the prod overlay's ConfigMap switches the server, without a restart",
        pattern.switch_in_place,
    )
    report.check("every probe of the manifests passes", pattern.probes)
    report.check(
        "every container runs as the manifest's non-root user, read-only root", pattern.users
    )
    report.check(
        "the prometheus.io annotations point at pg-ambassador's metrics",
        lambda: check_scrape_annotations(pattern.workload, pattern.app_ip),
    )
    report.check(
        "the prod overlay played afresh (kube play --replace) answers from its server",
        pattern.prod_from_scratch,
    )
    report.check("the pods stop cleanly: every container exits 0 on its stop signal", pattern.stop)
    return report
