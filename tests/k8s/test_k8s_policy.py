"""Policy over the rendered manifests: resources, pinned images, non-root, probes, no secret in
clear, configuration names shared with local, network isolation, and the scrape jobs of the rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import K8S, REPO, containers, objects, one, pod_specs

from lambda_contract.settings import ENV_NAMES

pytestmark = pytest.mark.unit

Rendered = dict[str, list[dict[str, Any]]]
OVERLAYS = ["dev", "prod"]
# Long-running workloads must say when they are ready and when they are stuck; Jobs need not.
PROBED_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
SECRET_LIKE = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|PRIVATE|ACCESS_KEY", re.IGNORECASE)


def pinned(image: str) -> bool:
    """A tag (not latest) or a digest; the registry part may carry a port."""
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and name.rsplit(":", 1)[1] not in ("", "latest")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_a_pinned_image(rendered: Rendered, overlay: str) -> None:
    problems = []
    for where, spec in pod_specs(rendered[overlay]):
        for c in containers(spec):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    problems.append(f"{where}/{c['name']}: {part} lacks cpu or memory")
            if not pinned(c["image"]):
                problems.append(f"{where}/{c['name']}: image {c['image']} is not pinned")
    flink = one(rendered[overlay], "FlinkDeployment", "lambda-speed")["spec"]
    for part in ("jobManager", "taskManager"):
        if not {"cpu", "memory"} <= set(flink[part]["resource"]):
            problems.append(f"FlinkDeployment {part}: resource lacks cpu or memory")
    if not pinned(flink["image"]):
        problems.append(f"FlinkDeployment image {flink['image']} is not pinned")
    for pool in objects(rendered[overlay], "KafkaNodePool"):
        if not {"requests", "limits"} <= set(pool["spec"].get("resources", {})):
            problems.append(f"KafkaNodePool/{pool['metadata']['name']}: no requests/limits")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_non_root_without_privileges(rendered: Rendered, overlay: str) -> None:
    problems = []
    specs = list(pod_specs(rendered[overlay]))
    specs.append(
        (
            "FlinkDeployment",
            one(rendered[overlay], "FlinkDeployment", "lambda-speed")["spec"]["podTemplate"]["spec"],
        )
    )
    for where, spec in specs:
        pod_sc = spec.get("securityContext", {})
        if not pod_sc.get("runAsNonRoot") or pod_sc.get("runAsUser", 1) == 0:
            problems.append(f"{where}: pod does not enforce a non-root user")
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        for c in containers(spec):
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}/{c['name']}: allowPrivilegeEscalation not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}/{c['name']}: capabilities not dropped")
            if sc.get("privileged"):
                problems.append(f"{where}/{c['name']}: privileged")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_workloads_have_probes(rendered: Rendered, overlay: str) -> None:
    problems = []
    for doc in rendered[overlay]:
        if doc["kind"] not in PROBED_KINDS:
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}: no {probe}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_is_hardened_and_probed_on_its_health_endpoints(rendered: Rendered, overlay: str) -> None:
    pod = one(rendered[overlay], "Deployment", "serving")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # The only writable place is the /tmp volume.
    assert [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")] == ["/tmp"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_persists_with_aof_and_a_password_from_the_secret(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    sts = one(docs, "StatefulSet", "redis")["spec"]
    assert sts["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    conf = next(c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].startswith("redis-config"))
    text = conf["data"]["redis.conf"]
    assert re.search(r"^appendonly yes$", text, re.M) and "requirepass" not in text.replace(
        "# requirepass", ""
    )
    secret_vols = [v for v in sts["template"]["spec"]["volumes"] if "secret" in v]
    assert secret_vols and secret_vols[0]["secret"]["secretName"].startswith("lambda-secrets")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_in_clear(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    problems = []
    for where, spec in pod_specs(docs):
        for c in containers(spec):
            for env in c.get("env", []):
                if SECRET_LIKE.search(env["name"]) and "value" in env:
                    problems.append(f"{where}/{c['name']}: {env['name']} has a literal value")
    flink = one(docs, "FlinkDeployment", "lambda-speed")["spec"]
    for key, value in flink["flinkConfiguration"].items():
        if SECRET_LIKE.search(key.replace("-", "_")) or "secret-key" in key or "access-key" in key:
            problems.append(f"FlinkDeployment flinkConfiguration {key}={value!r}")
    for cm in objects(docs, "ConfigMap"):
        for key in cm.get("data", {}):
            if SECRET_LIKE.search(key) and not key.endswith("_FILE"):
                problems.append(f"ConfigMap/{cm['metadata']['name']}: {key}")
    # The only Secret is the one generated from the overlay's untracked secrets.env.
    secrets = objects(docs, "Secret")
    assert [s["metadata"]["name"].rsplit("-", 1)[0] for s in secrets] == ["lambda-secrets"]
    assert not problems, "\n".join(problems)


def committed_files(folder: Path) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", str(folder)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [REPO / p for p in out.stdout.split("\0") if p]


def test_secrets_come_only_from_untracked_files() -> None:
    """No Secret manifest, no generator literal; every generator source is git-ignored, uncommitted."""
    problems = []
    for path in committed_files(K8S):
        if path.name == "secrets.env":
            problems.append(f"{path} is committed")
        if path.suffix not in (".yaml", ".yml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret":
                problems.append(f"{path}: a Secret manifest")
            for gen in doc.get("secretGenerator", []):
                if gen.get("literals"):
                    problems.append(f"{path}: secretGenerator {gen['name']} has literals")
                for src in [*gen.get("envs", []), *gen.get("files", [])]:
                    source = path.parent / src.split("=", 1)[-1]
                    ignored = subprocess.run(["git", "check-ignore", "-q", str(source)], cwd=REPO)
                    if ignored.returncode != 0:
                        problems.append(f"{path}: secretGenerator source {src} is not git-ignored")
    examples = [p for p in committed_files(K8S) if p.name == "secrets.env.example"]
    assert len(examples) == 2
    for example in examples:
        for line in example.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert line.strip().endswith("="), f"{example}: a value in the example: {line}"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_maps_use_only_real_setting_names(rendered: Rendered, overlay: str) -> None:
    seen = set()
    for cm in objects(rendered[overlay], "ConfigMap"):
        for key in cm.get("data", {}):
            if key.startswith("LAMBDA_"):
                assert key in ENV_NAMES, f"ConfigMap/{cm['metadata']['name']}: {key} is no setting"
                seen.add(key)
    assert {
        "LAMBDA_KAFKA_BOOTSTRAP",
        "LAMBDA_REDIS_URL",
        "LAMBDA_DELTA_ROOT",
        "LAMBDA_CHECKPOINT_DIR",
    } <= seen


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_parses_with_the_platform_settings(rendered: Rendered, overlay: str) -> None:
    """The cluster values pass the same checks as local ones (a bad value would stop every pod)."""
    from lambda_contract.settings import Settings

    cm = next(
        c
        for c in objects(rendered[overlay], "ConfigMap")
        if c["metadata"]["name"].startswith("lambda-config")
    )
    settings = Settings.from_env({**cm["data"], "LAMBDA_API_TOKENS": "x" * 32})
    assert settings.kafka_bootstrap.endswith(":9092") and settings.redis_password_file


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_default_deny_with_dns_allowed(rendered: Rendered, overlay: str) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(rendered[overlay], "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    dns = policies["allow-dns"]["egress"][0]["ports"]
    assert {"protocol": "UDP", "port": 53} in dns
    # Every pod-selecting policy selects pods that exist (a typo in a label would open nothing).
    pod_labels = [spec.get("metadata", {}).get("labels", {}) for spec in _pod_templates(rendered[overlay])]
    for name, spec in policies.items():
        wanted = spec["podSelector"].get("matchLabels", {})
        if wanted:
            assert any(wanted.items() <= labels.items() for labels in pod_labels), f"{name} selects no pod"


def _pod_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            out.append(spec["jobTemplate"]["spec"]["template"])
        elif doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            out.append(spec["template"])
        elif doc["kind"] == "FlinkDeployment":
            out.append(spec["podTemplate"])
        elif doc["kind"] == "KafkaNodePool":
            out.append(
                {"metadata": {"labels": {"strimzi.io/cluster": "lambda", "strimzi.io/broker-role": "true"}}}
            )
    return out


def test_redis_is_reachable_only_from_serving_and_the_speed_layer(rendered: Rendered) -> None:
    spec = one(rendered["prod"], "NetworkPolicy", "redis")["spec"]
    sources = [peer["podSelector"]["matchLabels"] for rule in spec["ingress"] for peer in rule["from"]]
    assert sources == [{"app.kubernetes.io/name": "serving"}, {"lambda.platform/job": "speed"}]


EXPORTER_MONITORS = {"redis", "kafka-exporter"}  # redis_exporter sidecars, Strimzi's Kafka Exporter


def test_scrape_jobs_match_the_local_job_names_the_rules_use(rendered: Rendered) -> None:
    """The shared alert rules select `job=...`; in k8s the monitors' jobLabel must yield the same."""
    local = yaml.safe_load((REPO / "infra/prometheus/prometheus.yml").read_text())
    local_jobs = {c["job_name"] for c in local["scrape_configs"]}
    docs = rendered["prod"]
    jobs = {}
    for svc in objects(docs, "Service"):
        job = svc["metadata"].get("labels", {}).get("lambda.platform/job")
        if job:
            jobs[svc["metadata"]["labels"]["app.kubernetes.io/name"]] = job
    flink_labels = one(docs, "FlinkDeployment", "lambda-speed")["spec"]["podTemplate"]["metadata"]["labels"]
    monitored = set()
    for mon in objects(docs, "ServiceMonitor"):
        assert mon["spec"]["jobLabel"] == "lambda.platform/job"
        monitored.add(jobs[mon["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]])
    for mon in objects(docs, "PodMonitor"):
        assert mon["spec"]["jobLabel"] == "lambda.platform/job"
        if mon["metadata"]["name"] in EXPORTER_MONITORS:
            continue  # third-party exporters: the rules select their series by metric name, not job
        assert mon["spec"]["selector"]["matchLabels"].items() <= flink_labels.items()
        monitored.add(flink_labels["lambda.platform/job"])
    assert monitored == {"speed", "serving", "pushgateway"} and monitored <= local_jobs


def test_both_speed_metrics_ports_are_declared_scraped_and_admitted(rendered: Rendered) -> None:
    """Flink's reporter on LAMBDA_SPEED_METRICS_PORT, the speed layer's own metrics on the next
    ports: one per slot, since every sink in a TaskManager pod takes the next free one."""
    docs = rendered["prod"]
    config = next(c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].startswith("lambda-config"))
    reporter = int(config["data"]["LAMBDA_SPEED_METRICS_PORT"])
    deployment = one(docs, "FlinkDeployment", "lambda-speed")["spec"]
    slots = int(deployment["flinkConfiguration"]["taskmanager.numberOfTaskSlots"])
    sinks = list(range(reporter + 1, reporter + 1 + slots))
    pod = deployment["podTemplate"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    scraped = {e["port"] for e in one(docs, "PodMonitor", "speed")["spec"]["podMetricsEndpoints"]}
    assert {ports[name] for name in scraped} == {reporter, *sinks}
    admitted = [
        p["port"]
        for rule in one(docs, "NetworkPolicy", "speed")["spec"]["ingress"]
        for peer in rule.get("from", [])
        if peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "monitoring"
        for p in rule["ports"]
    ]
    assert sorted(admitted) == [reporter, *sinks]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_values_appear_only_inside_the_secret(
    rendered: Rendered, k8s_copy: Path, overlay: str
) -> None:
    """The values of this run's throwaway secrets.env are nowhere but in the generated Secret."""
    import base64

    values = [
        line.split("=", 1)[1]
        for line in (k8s_copy / "overlays" / overlay / "secrets.env").read_text().splitlines()
        if "=" in line
    ]
    assert values
    for doc in rendered[overlay]:
        text = yaml.safe_dump(doc)
        if doc["kind"] == "Secret":
            assert sorted(base64.b64decode(v).decode() for v in doc["data"].values()) == sorted(values)
            continue
        leaked = [v for v in values if v in text or base64.b64encode(v.encode()).decode() in text]
        assert not leaked, f"{doc['kind']}/{doc['metadata']['name']} holds a secret value"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_points_at_the_services_the_overlay_runs(rendered: Rendered, overlay: str) -> None:
    """Host names and ports in lambda-config are the rendered Services, listener and container ports."""
    from urllib.parse import urlparse

    docs = rendered[overlay]
    data = next(c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].startswith("lambda-config"))[
        "data"
    ]
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in objects(docs, "Service")
    }
    kafka = one(docs, "Kafka", "lambda")
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert data["LAMBDA_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    for key in ("LAMBDA_REDIS_URL", "LAMBDA_PUSHGATEWAY_URL"):
        url = urlparse(data[key])
        assert url.hostname in services and url.port in services[url.hostname], key
    serving = one(docs, "Deployment", "serving")["spec"]["template"]["spec"]["containers"][0]
    assert data["LAMBDA_API_HOST"] == "0.0.0.0"
    assert int(data["LAMBDA_API_PORT"]) == serving["ports"][0]["containerPort"]
    mounted = {m["mountPath"] for m in serving["volumeMounts"]}
    assert str(Path(data["LAMBDA_REDIS_PASSWORD_FILE"]).parent) in mounted
    for key in ("LAMBDA_DELTA_ROOT", "LAMBDA_BATCH_CHECKPOINT_DIR", "LAMBDA_CHECKPOINT_DIR"):
        assert urlparse(data[key]).scheme in ("s3", "s3a"), f"{key} must be on object storage in a cluster"
