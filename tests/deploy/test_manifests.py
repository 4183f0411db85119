"""deploy/: every YAML file, the Kubernetes manifests (offline schemas) and the compose file."""

from __future__ import annotations

import copy
import importlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, cast

import pytest
import yaml

from gateway.cli import main
from gateway.config import Config, ConfigError, load
from gateway.config.units import parse_duration
from gateway.server.app import SHUTDOWN_MARGIN
from tests.deploy.test_dockerfile import (
    CONFIG_DIR,
    exec_form,
    final_base_image,
    healthcheck_url,
    last,
    runtime_user,
)

# kubernetes-validate ships its JSON schemas inside the package: validation never touches the
# network. It has no type information, hence Any.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
# The oldest Kubernetes minor these manifests support, and a recent one.
KUBERNETES_VERSIONS = ("1.30", "1.33")
SECRET = "s" * 40
ENVIRON = {"ACCESS_TOKEN_SECRET": SECRET}
GATEWAY_LABELS = {"app.kubernetes.io/name": "gateway"}
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])

Doc = dict[str, Any]


def _documents(path: Path) -> list[Doc]:
    """The non-empty YAML documents of a file."""
    return [cast(Doc, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _duplicate_keys(node: yaml.Node) -> Iterator[str]:
    """Mapping keys that occur twice (safe_load silently keeps the last one)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield f"line {key.start_mark.line + 1}: {key.value}"
                seen.add(key.value)
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)


def _kustomization() -> Doc:
    """deploy/k8s/kustomization.yaml."""
    return _documents(K8S / "kustomization.yaml")[0]


def _generator(kind: str, name: str) -> Doc:
    """A configMapGenerator or secretGenerator entry by name."""
    for entry in _kustomization().get(kind, []):
        if entry["name"] == name:
            return cast(Doc, entry)
    pytest.fail(f"kustomization.yaml has no {kind} named {name}")


def _generator_files(entry: Doc) -> dict[str, Path]:
    """A generator's `files:` as ConfigMap key -> source file (`key=path` or the file's name)."""
    files: dict[str, Path] = {}
    for item in entry.get("files", []):
        key, _, source = item.rpartition("=")
        files[key or PurePosixPath(source).name] = K8S / source
    return files


def _generator_literals(entry: Doc) -> dict[str, str]:
    """A generator's `literals:` as a dict."""
    return dict(item.split("=", 1) for item in entry.get("literals", []))


def _manifest_files() -> list[Path]:
    """Every Kubernetes manifest: the kustomization's resources and the examples."""
    resources = [K8S / item for item in _kustomization()["resources"]]
    return [*resources, *sorted((K8S / "examples").glob("*.yaml"))]


def _resources() -> list[Doc]:
    """Every object the kustomization's resources define."""
    return [doc for item in _kustomization()["resources"] for doc in _documents(K8S / item)]


def _find(kind: str, name: str, documents: list[Doc] | None = None) -> Doc:
    """The object of this kind and name."""
    for doc in _resources() if documents is None else documents:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    pytest.fail(f"no {kind} named {name}")


def _deployment() -> Doc:
    """The gateway Deployment."""
    return _find("Deployment", "gateway")


def _pod() -> Doc:
    """The gateway pod template's spec."""
    return cast(Doc, _deployment()["spec"]["template"]["spec"])


def _container() -> Doc:
    """The gateway container."""
    containers = _pod()["containers"]
    assert [c["name"] for c in containers] == ["gateway"]
    return cast(Doc, containers[0])


def _container_port(port: int | str, container: Doc | None = None) -> int:
    """A container port by number or name."""
    ports = (container or _container())["ports"]
    for entry in ports:
        if port in (entry["containerPort"], entry.get("name")):
            return int(entry["containerPort"])
    pytest.fail(f"no container port {port}")


def _walk(value: object) -> Iterator[tuple[str, object]]:
    """Every (key, value) pair in a nested document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _config_map_dir(tmp_path: Path) -> Path:
    """The `gateway-config` ConfigMap as the pod sees it: its keys as files in one directory."""
    mounted = tmp_path / "etc-gateway"
    mounted.mkdir()
    for key, source in _generator_files(_generator("configMapGenerator", "gateway-config")).items():
        shutil.copyfile(source, mounted / key)
    return mounted


@pytest.fixture
def k8s_config(tmp_path: Path) -> Config:
    """The configuration the Kubernetes pods load, built from the ConfigMap generator."""
    return load(_config_map_dir(tmp_path) / "gateway.yaml", ENVIRON)


# --- every YAML file -------------------------------------------------------------------------


def test_yaml_files_are_found() -> None:
    """The YAML collection covers compose, kustomize and the log shipper (no vacuous pass)."""
    names = {path.relative_to(DEPLOY).as_posix() for path in YAML_FILES}
    assert {"docker-compose.yaml", "k8s/kustomization.yaml", "logging/vector.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses_without_duplicate_keys(path: Path) -> None:
    """Every YAML file under deploy/ parses, has content, and repeats no mapping key."""
    assert _documents(path)
    for node in yaml.compose_all(path.read_text()):
        if node is not None:
            assert list(_duplicate_keys(node)) == []


# --- Kubernetes schemas ----------------------------------------------------------------------


def _validate(doc: Doc, version: str) -> None:
    """Validate one object against the bundled strict schema of exactly this version."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        validated = kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        pytest.fail(f"{name} against {version}: {where}: {exc.message}")
    assert validated == version, f"{name}: validated against {validated}, not {version}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: p.relative_to(K8S).as_posix())
def test_manifest_matches_kubernetes_schema(path: Path, version: str) -> None:
    """Each manifest validates offline against the strict Kubernetes OpenAPI schema."""
    documents = _documents(path)
    assert documents
    for doc in documents:
        _validate(doc, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_generated_objects_match_kubernetes_schema(version: str) -> None:
    """The ConfigMap and Secret the kustomization generates validate too."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "gateway-config"},
        "data": {
            key: source.read_text()
            for key, source in _generator_files(
                _generator("configMapGenerator", "gateway-config")
            ).items()
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gateway-secrets"},
        "type": "Opaque",
        "stringData": _generator_literals(_generator("secretGenerator", "gateway-secrets")),
    }
    _validate(config_map, version)
    _validate(secret, version)


def test_schema_check_rejects_unknown_fields() -> None:
    """The strict schema check catches a misspelled field, so a passing manifest means something."""
    broken = copy.deepcopy(_deployment())
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


# --- kustomization ---------------------------------------------------------------------------


def test_kustomization_references_only_existing_files() -> None:
    """Every resource and generator source exists inside deploy/k8s (kustomize's load root)."""
    kustomization = _kustomization()
    paths = [K8S / item for item in kustomization["resources"]]
    for kind in ("configMapGenerator", "secretGenerator"):
        for entry in kustomization.get(kind, []):
            paths += _generator_files(entry).values()
            paths += [K8S / item for item in entry.get("envs", [])]
    assert paths
    for path in paths:
        assert path.is_file(), path
        assert path.resolve().is_relative_to(K8S.resolve()), path


def test_every_manifest_is_listed_in_the_kustomization() -> None:
    """No manifest in deploy/k8s is forgotten by `kubectl apply -k`."""
    listed = set(_kustomization()["resources"])
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert present == listed


def test_upstreams_are_in_the_kustomization_namespace(k8s_config: Config) -> None:
    """routes.yaml's upstream URLs are in-cluster Service names in the namespace applied to."""
    namespace = _kustomization()["namespace"]
    assert k8s_config.routes.upstreams
    for upstream in k8s_config.routes.upstreams.values():
        host = upstream.url.host or ""
        match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", host)
        assert match, host
        assert match.group(2) == namespace


# --- the configuration inside the ConfigMap --------------------------------------------------


def test_config_map_passes_gateway_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generated ConfigMap's gateway.yaml and routes.yaml pass `gateway check`."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", SECRET)
    assert main(["check", "-c", str(_config_map_dir(tmp_path) / "gateway.yaml")]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_config_listens_on_all_interfaces(k8s_config: Config) -> None:
    """In a pod both listeners bind 0.0.0.0 (kubelet probes and the Service reach the pod IP)."""
    assert k8s_config.listen.host == "0.0.0.0"
    assert k8s_config.admin.host == "0.0.0.0"
    assert k8s_config.listen.port != k8s_config.admin.port


def test_placeholder_secret_is_refused(tmp_path: Path) -> None:
    """The committed placeholder secret makes the gateway refuse to start: it fails closed."""
    literals = _generator_literals(_generator("secretGenerator", "gateway-secrets"))
    with pytest.raises(ConfigError, match="secret"):
        load(_config_map_dir(tmp_path) / "gateway.yaml", literals)


def test_secret_comes_from_the_secret_generator() -> None:
    """ACCESS_TOKEN_SECRET reaches the container from the generated Secret, never inline."""
    env = {item["name"]: item for item in _container()["env"]}
    ref = env["ACCESS_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"]
    literals = _generator_literals(_generator("secretGenerator", ref["name"]))
    assert ref["key"] in literals
    assert "value" not in env["ACCESS_TOKEN_SECRET"]
    assert "${ACCESS_TOKEN_SECRET}" in (K8S / "config" / "gateway.yaml").read_text()


# --- the Deployment --------------------------------------------------------------------------


def test_deployment_runs_several_replicas() -> None:
    """At least two replicas, also as the autoscaler's floor."""
    assert _deployment()["spec"]["replicas"] >= 2
    assert _find("HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] >= 2


def test_container_ports_match_the_config(k8s_config: Config) -> None:
    """The container's `http` and `admin` ports are the config's listen and admin ports."""
    assert _container_port("http") == k8s_config.listen.port
    assert _container_port("admin") == k8s_config.admin.port


@pytest.mark.parametrize(
    ("probe", "path"), [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]
)
def test_probes_use_the_admin_port(k8s_config: Config, probe: str, path: str) -> None:
    """Readiness asks /readyz and liveness /healthz, both on the admin port."""
    get = _container()[probe]["httpGet"]
    assert get["path"] == path
    assert _container_port(get["port"]) == k8s_config.admin.port


def test_config_is_mounted_as_a_directory_that_updates_in_place() -> None:
    """The ConfigMap is mounted whole at /etc/gateway, with a fixed name, so edits reload live."""
    volumes = {volume["name"]: volume for volume in _pod()["volumes"]}
    mounts = [m for m in _container()["volumeMounts"] if m["mountPath"] == CONFIG_DIR]
    assert len(mounts) == 1
    assert mounts[0].get("readOnly") is True
    config_map = volumes[mounts[0]["name"]]["configMap"]
    generator = _generator("configMapGenerator", config_map["name"])
    assert "items" not in config_map
    assert generator["options"]["disableNameSuffixHash"] is True
    args = _container()["args"]
    config_file = PurePosixPath(args[args.index("-c") + 1])
    assert str(config_file.parent) == CONFIG_DIR
    assert config_file.name in _generator_files(generator)


def test_no_subpath_anywhere() -> None:
    """No manifest uses subPath, whose mounts never receive ConfigMap updates."""
    for path in _manifest_files():
        for doc in _documents(path):
            keys = {key for key, _ in _walk(doc)}
            assert not keys & {"subPath", "subPathExpr"}, path


def test_security_context_is_locked_down() -> None:
    """Non-root as the image's uid, read-only root, no privilege escalation, no capabilities."""
    pod = _pod().get("securityContext", {})
    container = _container()["securityContext"]

    def effective(field: str) -> object:
        return container.get(field, pod.get(field))

    assert effective("runAsNonRoot") is True
    assert (effective("runAsUser"), effective("runAsGroup")) == runtime_user()
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert "add" not in container["capabilities"]
    assert effective("seccompProfile") == {"type": "RuntimeDefault"}
    assert _pod()["automountServiceAccountToken"] is False


def _pre_stop_seconds() -> float:
    """How long the preStop hook sleeps before SIGTERM."""
    hook = _container()["lifecycle"]["preStop"]
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert PurePosixPath(command[0]).name == "sleep"
    assert len(command) == 2
    return float(command[1])


# Beyond the gateway's own bound (drain_timeout + SHUTDOWN_MARGIN): the interpreter's exit and
# the kubelet's own latency, so that a busy node still never reaches the SIGKILL.
GRACE_ROOM_SECONDS = 2.0


def test_grace_period_covers_pre_stop_and_drain(k8s_config: Config) -> None:
    """terminationGracePeriodSeconds exceeds the preStop sleep plus the whole bounded shutdown
    (drain_timeout plus the shutdown margin), with room to spare."""
    pre_stop = _pre_stop_seconds()
    assert pre_stop > 0
    shutdown = k8s_config.drain_timeout + SHUTDOWN_MARGIN
    assert _pod()["terminationGracePeriodSeconds"] >= pre_stop + shutdown + GRACE_ROOM_SECONDS


def test_pre_stop_sleep_binary_is_in_the_image() -> None:
    """An exec preStop `sleep` needs coreutils: the runtime image is Debian-based python slim."""
    if "exec" in _container()["lifecycle"]["preStop"]:
        assert re.fullmatch(r"python:[\d.]+-slim(-\w+)?(@sha256:\w+)?", final_base_image())


def test_resources_are_bounded() -> None:
    """The container requests and limits CPU and memory."""
    resources = _container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind


def test_container_runs_the_image_entrypoint() -> None:
    """The container keeps the image's ENTRYPOINT and only passes `run -c <config>` as args."""
    assert "command" not in _container()
    assert _container()["args"] == exec_form(last("CMD").arguments)


# --- labels, Services, autoscaling, disruption budget ----------------------------------------


def test_gateway_objects_select_the_gateway_label() -> None:
    """Deployment, Services, PDB and spread constraints select app.kubernetes.io/name=gateway."""
    template_labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert GATEWAY_LABELS.items() <= template_labels.items()
    selectors = [_deployment()["spec"]["selector"]["matchLabels"]]
    selectors += [doc["spec"]["selector"] for doc in _resources() if doc["kind"] == "Service"]
    selectors.append(_find("PodDisruptionBudget", "gateway")["spec"]["selector"]["matchLabels"])
    selectors += [c["labelSelector"]["matchLabels"] for c in _pod()["topologySpreadConstraints"]]
    assert len(selectors) >= 4
    for selector in selectors:
        assert selector == GATEWAY_LABELS


def test_log_shipper_selects_the_gateway_pods() -> None:
    """deploy/logging/vector.yaml's label selector matches the gateway pods' labels."""
    vector = _documents(DEPLOY / "logging" / "vector.yaml")[0]
    selector = vector["sources"]["gateway_pods"]["extra_label_selector"]
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    for requirement in selector.split(","):
        key, _, value = requirement.partition("=")
        assert labels.get(key.strip()) == value.strip()


def test_public_service_exposes_only_the_public_port(k8s_config: Config) -> None:
    """The `gateway` Service targets the public port only; the admin port stays cluster-internal."""
    public = _find("Service", "gateway")["spec"]
    assert [_container_port(p["targetPort"]) for p in public["ports"]] == [k8s_config.listen.port]
    for service in (doc for doc in _resources() if doc["kind"] == "Service"):
        targets = {_container_port(p["targetPort"]) for p in service["spec"]["ports"]}
        if k8s_config.admin.port in targets:
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_autoscaler_scales_the_deployment_on_cpu() -> None:
    """An autoscaling/v2 HPA scales the gateway Deployment on CPU utilisation."""
    hpa = _find("HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "gateway",
    )
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert "cpu" in resources


def test_disruption_budget_keeps_one_gateway() -> None:
    """A policy/v1 PodDisruptionBudget keeps one gateway pod through voluntary disruptions."""
    pdb = _find("PodDisruptionBudget", "gateway")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1


# --- NetworkPolicy ---------------------------------------------------------------------------


def _upstream_pods(k8s_config: Config) -> list[tuple[dict[str, str], int]]:
    """Each upstream's pod labels and container port, via the example Service its URL names."""
    examples = [doc for p in sorted((K8S / "examples").glob("*.yaml")) for doc in _documents(p)]
    found = []
    for upstream in k8s_config.routes.upstreams.values():
        name = (upstream.url.host or "").split(".")[0]
        service = _find("Service", name, examples)
        [port] = [p for p in service["spec"]["ports"] if p["port"] == upstream.url.port]
        [deployment] = [
            doc
            for doc in examples
            if doc["kind"] == "Deployment"
            and service["spec"]["selector"].items()
            <= doc["spec"]["template"]["metadata"]["labels"].items()
        ]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        found.append((service["spec"]["selector"], _container_port(port["targetPort"], container)))
    assert found
    return found


def _policies() -> list[Doc]:
    """Every NetworkPolicy in the kustomization."""
    return [doc for doc in _resources() if doc["kind"] == "NetworkPolicy"]


def test_upstreams_accept_only_gateway_pods(k8s_config: Config) -> None:
    """A NetworkPolicy selects each upstream's pods and admits ingress only from gateway pods."""
    for labels, port in _upstream_pods(k8s_config):
        [policy] = [p for p in _policies() if p["spec"]["podSelector"]["matchLabels"] == labels]
        spec = policy["spec"]
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        assert "Ingress" in spec["policyTypes"]
        assert spec["ingress"]
        for rule in spec["ingress"]:
            assert rule.get("from"), "a rule without `from` admits every source"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, peer
                assert peer["podSelector"]["matchLabels"] == GATEWAY_LABELS
            assert [p["port"] for p in rule["ports"]] == [port]


def test_admin_port_is_reachable_only_from_selected_peers(k8s_config: Config) -> None:
    """The gateway's policy opens the public port but the admin port only to selected peers."""
    [policy] = [p for p in _policies() if p["spec"]["podSelector"]["matchLabels"] == GATEWAY_LABELS]
    rules = policy["spec"]["ingress"]
    admin_rules = [
        r for r in rules if k8s_config.admin.port in [p["port"] for p in r.get("ports", [])]
    ]
    assert admin_rules
    for rule in rules:
        ports = [p["port"] for p in rule.get("ports", [])]
        if not rule.get("from"):
            assert ports, "an open rule without ports exposes the admin port too"
            assert k8s_config.admin.port not in ports
    assert any(k8s_config.listen.port in [p["port"] for p in r.get("ports", [])] for r in rules)


# --- docker compose --------------------------------------------------------------------------


def _compose() -> Doc:
    """deploy/docker-compose.yaml."""
    return _documents(COMPOSE_FILE)[0]


def _compose_service(name: str) -> Doc:
    """A compose service by name."""
    return cast(Doc, _compose()["services"][name])


def _compose_config_dir(tmp_path: Path) -> Path:
    """The gateway container's /etc/gateway, rebuilt from the compose file's bind mounts."""
    mounted = tmp_path / "etc-gateway"
    volumes = [v for v in _compose_service("gateway")["volumes"] if v["type"] == "bind"]
    inside = [v for v in volumes if PurePosixPath(v["target"]).is_relative_to(CONFIG_DIR)]
    assert inside
    for volume in sorted(inside, key=lambda v: len(PurePosixPath(v["target"]).parts)):
        assert volume["read_only"] is True
        relative = PurePosixPath(volume["target"]).relative_to(CONFIG_DIR)
        shutil.copytree(DEPLOY / volume["source"], mounted / relative, dirs_exist_ok=True)
    return mounted


@pytest.fixture
def compose_config(tmp_path: Path) -> Config:
    """The configuration the compose gateway container loads."""
    return load(_compose_config_dir(tmp_path) / "gateway.yaml", ENVIRON)


def test_compose_config_passes_gateway_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The compose gateway's mounted /etc/gateway (config and keys) passes `gateway check`."""
    assert "command" not in _compose_service("gateway")
    config = PurePosixPath(exec_form(last("CMD").arguments)[-1])
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", SECRET)
    mounted = _compose_config_dir(tmp_path) / config.relative_to(CONFIG_DIR)
    assert main(["check", "-c", str(mounted)]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_compose_builds_the_repository_image() -> None:
    """The compose gateway is built from the repository's Dockerfile."""
    build = _compose_service("gateway")["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_compose_publishes_only_the_gateway_public_port(compose_config: Config) -> None:
    """Only the gateway's public port is published; the admin port at most on 127.0.0.1."""
    assert compose_config.listen.host == "0.0.0.0"
    for name, service in _compose()["services"].items():
        if name != "gateway":
            assert "ports" not in service, name
    published = {}
    for port in _compose_service("gateway")["ports"]:
        published[port["target"]] = port.get("host_ip", "0.0.0.0")
    assert compose_config.listen.port in published
    assert set(published) <= {compose_config.listen.port, compose_config.admin.port}
    if compose_config.admin.port in published:
        assert published[compose_config.admin.port] == "127.0.0.1"


def test_compose_upstream_is_reachable_only_through_the_gateway(compose_config: Config) -> None:
    """The upstream sits only on internal networks, which the gateway also joins."""
    networks = _compose()["networks"]
    [upstream] = compose_config.routes.upstreams.values()
    service = _compose_service(upstream.url.host or "")
    assert str(upstream.url.port) == str(service["environment"]["PORT"])
    assert service["networks"]
    for network in service["networks"]:
        assert networks[network]["internal"] is True
        assert network in _compose_service("gateway")["networks"]
    outside = [
        n for n in _compose_service("gateway")["networks"] if not networks[n].get("internal")
    ]
    assert outside, "the gateway needs a non-internal network for its published port"


def test_compose_secret_comes_from_the_environment() -> None:
    """ACCESS_TOKEN_SECRET is interpolated from the caller's environment, never written down."""
    value = _compose_service("gateway")["environment"]["ACCESS_TOKEN_SECRET"]
    assert re.fullmatch(r"\$\{ACCESS_TOKEN_SECRET(:?\?[^}]*)?\}", value)


def test_compose_stop_grace_covers_the_drain(compose_config: Config) -> None:
    """Docker waits longer than the gateway's whole bounded shutdown (drain_timeout plus the
    shutdown margin, with room to spare) before it kills the container."""
    grace = parse_duration(_compose_service("gateway")["stop_grace_period"])
    shutdown = compose_config.drain_timeout + SHUTDOWN_MARGIN
    assert grace >= shutdown + GRACE_ROOM_SECONDS


def test_compose_healthcheck_reaches_the_admin_port(compose_config: Config) -> None:
    """The image's HEALTHCHECK (not overridden) hits the compose config's admin listener."""
    assert "healthcheck" not in _compose_service("gateway")
    assert compose_config.admin.host in {"0.0.0.0", "127.0.0.1"}
    assert healthcheck_url() == f"http://127.0.0.1:{compose_config.admin.port}/healthz"


def test_compose_gateway_is_hardened() -> None:
    """The compose gateway has a read-only root filesystem and no capabilities."""
    service = _compose_service("gateway")
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
