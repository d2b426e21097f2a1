"""The deployment files agree with each other and with livecore, without Docker or a cluster:
the compose file, the Kubernetes manifests and the systemd unit set only real settings
(each read by livecore's own config loader), name the same ports as nginx.conf and
Prometheus, stop later than livecore's drain; the Dockerfile installs with the setup
command's own steps; Debian's promtool accepts the alert rules and the Prometheus config."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from livecore.config import Config
from livecore.configload import load_config
from tests.deploy.nginx import ROOT, SHIPPED, SHIPPED_NODE_PORTS

DEPLOY = ROOT / "deploy"
NODES = ("livecore-1", "livecore-2")
# What `${VAR:?...}` and the cluster's Secret stand for while the files are read here.
SAMPLE_SECRETS = {
    "LIVECORE_DOMAIN": "live.example.com",
    "LIVECORE_PUBLIC_IP": "203.0.113.10",
    "LIVECORE_SECRET_KEY": "a-secret-key-a-secret-key-a-secret",
    "POSTGRES_PASSWORD": "pw",
    "GRAFANA_ADMIN_PASSWORD": "pw",
}


def drain_s(config: Config) -> float:
    """How long livecore may take to stop after SIGTERM with the default settings: in-flight
    requests, plus the publishers' drain grace where this version has one."""
    return config.shutdown_timeout_s + float(getattr(config.node, "drain_grace_s", 0.0))


def seconds(value: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|min)?", value.strip())
    assert found, value
    factor = {"ms": 0.001, "m": 60.0, "min": 60.0}.get(found.group(2) or "s", 1.0)
    return float(found.group(1)) * factor


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def substituted(value: str) -> str:
    """Compose's ${VAR:?message} and ${VAR:-default}, with the sample values."""

    def one(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":")
        return SAMPLE_SECRETS.get(name, default.lstrip("-?") if default.startswith("-") else "")

    return re.sub(r"\$\{([^}]+)\}", one, value)


def node_environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: substituted(str(v)) for k, v in service["environment"].items()}


def nginx_upstream_ports() -> dict[str, list[int]]:
    text = SHIPPED.read_text()
    upstreams = re.findall(r"upstream (\w+) \{(.*?)\}", text, re.S)
    assert upstreams, "no upstream in nginx.conf"
    return {
        name: [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+)", body)]
        for name, body in upstreams
    }


def trusts(config: Config, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(n, strict=False) for n in config.trusted_proxies)


def test_compose_runs_two_nodes_with_the_services_nginx_and_prometheus_expect() -> None:
    services = compose()["services"]
    assert set(services) == {*NODES, "redis", "postgres", "nginx", "prometheus", "grafana"}
    ports = []
    for name in NODES:
        env = node_environment(services[name])
        # Every variable is a real setting: livecore's loader refuses unknown ones.
        config = load_config(environ=env)
        ports.append(config.port)
        assert config.node.id == name
        assert config.node.internal_url == f"http://127.0.0.1:{config.port}"
        assert config.host == "127.0.0.1"  # only nginx is reachable from outside
        assert config.public_url == "https://live.example.com"
        assert trusts(config, "127.0.0.1")  # nginx's address on the host network
        assert config.database_url.endswith("@127.0.0.1:5432/livecore")
        assert config.redis_url == "redis://127.0.0.1:6379/0"
        assert config.sfu.ice_host_addresses == ("203.0.113.10",)
        assert seconds(services[name]["stop_grace_period"]) > drain_s(config)
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["network_mode"] == "host"
    assert tuple(ports) == SHIPPED_NODE_PORTS
    # nginx sends to exactly these nodes, in both upstreams; Prometheus scrapes them.
    assert nginx_upstream_ports() == {"livecore": ports, "livecore_by_stream": ports}
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert [c["url"] for c in job["http_sd_configs"]] == [
        f"http://127.0.0.1:{p}/metrics/targets" for p in ports
    ]
    # Prometheus reads the token beside its configuration, where compose mounts it.
    assert {(c["authorization"]["type"], c["authorization"]["credentials_file"])
            for c in job["http_sd_configs"]} == {("Bearer", "livecore-token")}  # fmt: skip
    assert ("./prometheus/livecore-token:/etc/prometheus/livecore-token:ro"
            in services["prometheus"]["volumes"])  # fmt: skip
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    # The databases listen where the nodes look for them.
    assert "listen_addresses=127.0.0.1" in services["postgres"]["command"]
    redis = services["redis"]["command"]
    assert redis[redis.index("--port") + 1] == "6379" and "127.0.0.1" in redis
    # nginx gets the shipped file; Grafana's datasource is this Prometheus.
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    listen = next(a for a in services["prometheus"]["command"] if "listen-address" in a)
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert datasources[0]["url"] == "http://" + listen.split("=", 1)[1]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "livecore.yaml").read_text()
    )["providers"][0]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "livecore.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {datasources[0]["uid"]}
    # Every variable compose requires is documented in .env.example.
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    example = (DEPLOY / ".env.example").read_text()
    assert required == set(SAMPLE_SECRETS)
    assert all(re.search(rf"^{name}=", example, re.M) for name in required)


def test_the_dockerfile_installs_with_the_setup_command_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-[\w-]*bookworm$", text, re.M)
    # The same functions of bin/setup.sh, in the same order, as bin/run.
    steps = re.findall(r"^(ensure_\w+)(?: (.*))?$", (ROOT / "bin" / "run").read_text(), re.M)
    setup = re.search(r"^RUN bash -c '\. bin/setup\.sh && (.*?)'", text, re.M)
    assert setup, "the Dockerfile does not run bin/setup.sh"
    calls = [shlex.split(call) for call in setup.group(1).split(" && ")]
    assert calls == [[name, *shlex.split(args)] for name, args in steps]
    # Everything that install reads is in the image.
    copied = {p for line in re.findall(r"^COPY (.*) \S+$", text, re.M) for p in line.split()}
    assert {"pyproject.toml", "README.md", "LICENSE", "bin", "configs", "livecore"} <= copied
    assert {"web/package.json", "web/package-lock.json"} <= copied
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user == ["livecore"]
    assert re.search(r"useradd --system --uid 10001 ", text)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert re.search(r'^CMD \["/srv/livecore/\.venv/bin/livecore", "serve"\]$', text, re.M)


def test_the_systemd_unit_outlasts_the_drain_and_its_config_is_livecores() -> None:
    unit = (DEPLOY / "systemd" / "livecore@.service").read_text()
    entries: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries.setdefault(key, []).append(value)
    environ = dict(e.split("=", 1) for e in entries["Environment"])
    environ = {k: v.replace("%i", "8081").replace("%H", "media-1") for k, v in environ.items()}
    exec_start = shlex.split(entries["ExecStart"][0])
    assert exec_start[:2] == ["/srv/livecore/.venv/bin/livecore", "serve"]
    assert exec_start[2] == "--config"
    # The shipped settings file, where the unit reads it, is one livecore accepts.
    config = load_config(DEPLOY / "systemd" / "livecore.toml", environ=environ)
    assert config.port == 8081 and config.node.id == "media-1:8081"
    assert trusts(config, "127.0.0.1")
    assert entries["KillSignal"] == ["SIGTERM"] and entries["KillMode"] == ["mixed"]
    assert seconds(entries["TimeoutStopSec"][0]) > drain_s(config)
    assert entries["User"] == ["livecore"]


def test_the_kubernetes_manifests_probe_health_and_outlast_the_drain() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "livecore.yaml").read_text()))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    assert set(by_kind) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    maps = {m["metadata"]["name"]: m for m in by_kind["ConfigMap"]}
    assert set(maps) == {"livecore", "livecore-prometheus"}
    (deployment,) = by_kind["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The environment it gets is a valid livecore configuration.
    environ = dict(maps["livecore"]["data"])
    fields = {"POD_NAME": "livecore-abc", "POD_IP": "10.1.2.3", "HOST_IP": "10.1.0.7"}
    for item in container["env"]:
        if "value" in item:
            environ[item["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: fields[m.group(1)], item["value"]
            )
    environ |= {"LIVECORE_SECRET_KEY": "s" * 32, "LIVECORE_REDIS_URL": "redis://redis:6379/0"}
    config = load_config(environ=environ)
    assert config.node.internal_url == f"http://10.1.2.3:{config.port}"
    (port,) = container["ports"]
    assert port["containerPort"] == config.port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The grace counts from preStop: the pause, then livecore's own stop after SIGTERM.
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(pause[1]) + drain_s(config)
    # The image's unprivileged user.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    for service in by_kind["Service"]:
        assert service["spec"]["selector"] == labels
        assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    (budget,) = by_kind["PodDisruptionBudget"]
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["maxUnavailable"] == 1


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (bin/test installs Debian's prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def test_the_alerts_fire_on_what_they_watch() -> None:
    """promtool's unit tests (tests/deploy/alerts_test.yml): synthetic series in, alerts out."""
    tested = promtool("test", "rules", str(Path(__file__).with_name("alerts_test.yml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_accepts_the_alert_rules_and_the_prometheus_config(tmp_path: Path) -> None:
    rules = promtool("check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS" in rules.stdout
    config = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    # The job the Kubernetes manifests give for the cluster's Prometheus, too.
    documents = yaml.safe_load_all((DEPLOY / "kubernetes" / "livecore.yaml").read_text())
    (job,) = [d for d in documents if d["metadata"]["name"] == "livecore-prometheus"]
    (tmp_path / "prometheus.yml").write_text(job["data"]["prometheus.yml"])
    config = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    scrape = yaml.safe_load(job["data"]["prometheus.yml"])
    assert scrape["scrape_configs"][0]["http_sd_configs"][0]["url"].endswith("/metrics/targets")
    names = [
        r["alert"]
        for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    ]
    for wanted in ("EventLoopLag", "ChatDeliverySlow", "PartProductionLag", "IngestLoss",
                   "PaymentFailures", "PaymentProcessorCircuitOpen", "RedisUnreachable",
                   "PostgresUnreachable"):  # fmt: skip
        assert f"Livecore{wanted}" in names
