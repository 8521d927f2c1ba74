"""The deployment files, checked with the tools that read them; no Docker engine needed.

- ``Dockerfile``: hadolint; its stages, COPY lines and HEALTHCHECK (run against a stub).
- ``docker-compose.microservices.yml``: check-jsonschema with its vendored Compose
  Specification schema; replicas, healthchecks, dependencies, secrets, volumes.
- ``deploy/k8s``: kubernetes-validate (bundled API schemas, strict) on every manifest, and on
  the kustomize output when kubectl or kustomize is installed; probes, resources, security.
- ``deploy/nginx/nginx.conf``: ``nginx -t`` when nginx is installed; upstream and retry rules.

Environment variable names in all of them are checked against the services' settings
classes, which ignore unknown names silently.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices, ValidationError

from sensor_backend.auth.settings import AuthSettings
from sensor_backend.core.settings import PLACEHOLDER_SECRETS
from sensor_backend.events.settings import EventsSettings
from sensor_backend.gateway.settings import GatewaySettings
from sensor_backend.sensor.settings import SensorSettings

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from pydantic_settings import BaseSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.microservices.yml"
COMPOSE_ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
K8S = ROOT / "deploy" / "k8s"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

SERVICE_PORTS = {"gateway": 8000, "auth": 8001, "sensor": 8002, "events": 8003}
SETTINGS: tuple[type[BaseSettings], ...] = (
    GatewaySettings,
    AuthSettings,
    SensorSettings,
    EventsSettings,
)
SETTINGS_BY_SERVICE = dict(zip(("gateway", "auth", "sensor", "events"), SETTINGS, strict=True))
# Read by the image's HEALTHCHECK, not by the settings.
# Read by the image's entrypoint (SERVICE) or by a library in the process (OpenBLAS), not by
# a settings class.
IMAGE_ONLY_ENV = {"SERVICE", "OPENBLAS_NUM_THREADS"}
# Compose variable substitution: ${NAME}, ${NAME:-default}, ${NAME:?message}...
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
# The oldest Kubernetes these manifests claim (README) and the newest schemas bundled.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
# nginx got `resolve` for upstream servers in open source 1.27.3.
NGINX_RESOLVE_SINCE = (1, 27, 3)
TOOL_TIMEOUT_S = 60


def tool(name: str) -> str:
    """A dev-extra tool from this venv's bin (make does not activate it), else from PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the dev extra (pip install -e '.[dev]')")
    return found


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
    )


@cache
def settings_env_names() -> frozenset[str]:
    """Every environment variable some service's settings class reads."""
    names: set[str] = set()
    for cls in SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(c for c in alias.choices if isinstance(c, str))
            elif isinstance(alias, str):
                names.add(alias)
            else:
                names.add(f"{prefix}{name}".upper())
    return frozenset(names)


def load_settings(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Any:
    """The settings the service named by SERVICE builds from exactly ``env``."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name in settings_env_names():
            monkeypatch.setenv(name, value)
    return SETTINGS_BY_SERVICE[env["SERVICE"]]()


def assert_production_container(settings: Any) -> None:
    service = settings.service_name
    assert settings.environment == "production"
    assert settings.host == "0.0.0.0"
    assert settings.port == SERVICE_PORTS[service]
    if hasattr(settings, "spool_dir"):
        assert str(settings.spool_dir) == image_env()[f"{service.upper()}_SPOOL_DIR"]


def env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage (named by ``AS``), each starting with its FROM."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            current = stages.setdefault(name, [])
        if current is not None:
            current.append((keyword, rest))
    return stages


def dockerfile_args() -> dict[str, str]:
    """Defaults of the global ARGs (before the first FROM)."""
    args: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    return args


def final_stage() -> list[tuple[str, str]]:
    return list(dockerfile_stages().values())[-1]


def copy_sources(stage: list[tuple[str, str]]) -> list[str]:
    sources: list[str] = []
    for keyword, rest in stage:
        if keyword in {"COPY", "ADD"}:
            tokens = [t for t in rest.split() if not t.startswith("--")]
            sources.extend(tokens[:-1])
    return sources


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def image_uid() -> int:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    return int(users[-1].split(":")[0])


def healthcheck_argv() -> list[str]:
    (rest,) = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    argv: list[str] = json.loads(rest[rest.index(" CMD ") + len(" CMD ") :])
    return argv


def test_hadolint_passes() -> None:
    """The Dockerfile passes hadolint, down to style-level findings."""
    result = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_built_from_the_tested_package() -> None:
    """The builder copies pyproject, its readme and src/, and the image installs that wheel."""
    stages = dockerfile_stages()
    builder, runtime = stages["builder"], final_stage()
    sources = {s.rstrip("/") for s in copy_sources(builder)}
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert sources == {"pyproject.toml", PYPROJECT["project"]["readme"], "src"}
    assert all(package.split("/")[0] in sources for package in wheel["packages"])
    assert any(k == "RUN" and "pip wheel" in r and r.endswith(" .") for k, r in builder)
    # The runtime stage takes nothing from the context: only the builder's wheels, offline.
    assert copy_sources(runtime) == []
    installs = [r for k, r in runtime if k == "RUN" and "pip install" in r]
    assert len(installs) == 1
    assert "--mount=type=bind,from=builder" in installs[0]
    assert "--no-index" in installs[0]
    assert "sensor_backend-*.whl" in installs[0]


def test_image_final_stage_is_slim_non_root_with_healthcheck() -> None:
    """The final stage: python:3.11-slim, numeric non-root USER, HEALTHCHECK, no compiler."""
    runtime = final_stage()
    base = runtime[0][1].split()[0]
    for name, value in dockerfile_args().items():
        base = base.replace(f"${{{name}}}", value)
    assert base == "python:3.11-slim"
    assert image_uid() > 0
    assert "/health" in healthcheck_argv()[-1]
    text = " ".join(rest for _, rest in runtime)
    for build_tool in ("gcc", "g++", "build-essential", "python3-dev"):
        assert build_tool not in text
    (cmd,) = [json.loads(rest) for keyword, rest in runtime if keyword == "CMD"]
    assert cmd == ["sensor-gateway"]
    assert cmd[0] in PYPROJECT["project"]["scripts"]


def test_image_env_listens_everywhere_and_names_real_settings() -> None:
    """Every service binds 0.0.0.0 in the image, and every ENV name is read by a service."""
    env = image_env()
    for prefix in ("GATEWAY", "AUTH", "SENSOR", "EVENTS"):
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
    assert env["SENSOR_BACKEND_ENV"] == "production"
    app_env = {k for k in env if not k.startswith(("PYTHON", "PIP_"))} - IMAGE_ONLY_ENV
    assert app_env <= settings_env_names()


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stub_service(request: pytest.FixtureRequest) -> Iterator[int]:
    """An HTTP server answering /health with the status in the test's parameter."""
    handler = type("Handler", (_Health,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("stub_service", "exit_code"), [(200, 0), (503, 1)], indirect=["stub_service"]
)
@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_image_healthcheck_probes_the_selected_service(
    stub_service: int, exit_code: int, service: str
) -> None:
    """The HEALTHCHECK command finds the service's port from SERVICE and fails on non-2xx."""
    argv = healthcheck_argv()
    assert argv[0] == "python"
    env = {"SERVICE": service, f"{service.upper()}_PORT": str(stub_service)}
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == exit_code, result.stderr


def test_dockerignore_admits_only_the_build_inputs() -> None:
    """The context is an allow-list of exactly the builder's COPY sources (no .venv, .git)."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {s.rstrip("/") for s in copy_sources(dockerfile_stages()["builder"])}


# --------------------------------------------------------------------------- compose


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def app_services() -> dict[str, dict[str, Any]]:
    """The services running the sensor-backend image, by compose name."""
    image = services()["auth"]["image"]
    return {name: svc for name, svc in services().items() if svc.get("image") == image}


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose's substitution; a required variable missing from ``values`` gets a test value."""

    def substitute(match: re.Match[str]) -> str:
        name, op = match["name"], match["op"] or ""
        if op.endswith("+"):
            return match["arg"] if values.get(name) else ""
        if name in values:
            return values[name]
        return match["arg"] if op.endswith("-") else f"test-value-of-{name.lower()}"

    return INTERPOLATION.sub(substitute, text).replace("$$", "$")


def compose_env(name: str, values: Mapping[str, str]) -> dict[str, str]:
    """What a compose app container sees: the image's ENV, then its interpolated environment."""
    env = {
        key: interpolate(str(value), values)
        for key, value in services()[name]["environment"].items()
    }
    return {**image_env(), **env}


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_compose_matches_the_compose_spec() -> None:
    """The file validates against the Compose Specification vendored by check-jsonschema."""
    result = run(
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_interpolations_are_well_formed() -> None:
    """Every $ is $$ or a braced ${NAME}, ${NAME:-default} or ${NAME:?message}."""
    valid = re.compile(rf"\$\$|{INTERPOLATION.pattern}")
    for text in strings(compose()):
        assert "$" not in valid.sub("", text), text


def test_compose_required_variables_are_documented() -> None:
    """Each ${NAME:?...} the file requires is in deploy/compose.env.example."""
    required = {
        m for text in strings(compose()) for m in re.findall(r"\$\{([A-Za-z_]\w*):\?", text)
    }
    assert required >= {"POSTGRES_PASSWORD", "ADMIN_PASSWORD", "SERVICE_ACCOUNT_PASSWORD"}
    assert required <= env_file(COMPOSE_ENV_EXAMPLE).keys()


@pytest.mark.parametrize("name", sorted(compose()["services"]))
def test_compose_service_has_healthcheck_and_restart_policy(name: str) -> None:
    """Every service restarts unless stopped and has a healthcheck."""
    svc = services()[name]
    assert svc["restart"] == "unless-stopped"
    assert svc["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize("name", sorted(compose()["services"]))
def test_compose_dependencies_wait_for_healthy(name: str) -> None:
    """Every depends_on entry waits for service_healthy of a service that exists."""
    depends = services()[name].get("depends_on", {})
    assert isinstance(depends, dict)
    for dependency, spec in depends.items():
        assert dependency in services()
        assert spec["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(app_services()))
def test_compose_app_service_is_wired_consistently(name: str) -> None:
    """Command, SERVICE, healthcheck port and env names agree with the image and settings."""
    svc = services()[name]
    env = svc["environment"]
    service = env["SERVICE"]
    assert svc["command"] == [f"sensor-{service}"]
    assert svc["command"][0] in PYPROJECT["project"]["scripts"]
    assert f"127.0.0.1:{SERVICE_PORTS[service]}/health/ready" in svc["healthcheck"]["test"][-1]
    compile(svc["healthcheck"]["test"][-1], f"{name} healthcheck", "exec")
    assert env["SENSOR_BACKEND_ENV"] == "production"
    assert set(env) - IMAGE_ONLY_ENV <= settings_env_names()
    for key, value in env.items():
        if "PASSWORD" in key:
            assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{key} must be a required ${{}}"


@pytest.mark.parametrize("name", sorted(app_services()))
def test_compose_environment_makes_valid_production_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's ENV plus the service's environment load: production, 0.0.0.0, its port."""
    assert_production_container(load_settings(monkeypatch, compose_env(name, {})))


@pytest.mark.parametrize("name", ["auth", "sensor"])
def test_compose_example_secrets_stop_the_services(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left unreplaced, deploy/compose.env.example's passwords make the services refuse."""
    env = compose_env(name, env_file(COMPOSE_ENV_EXAMPLE))
    with pytest.raises(ValidationError, match="placeholder"):
        load_settings(monkeypatch, env)


def test_compose_sensor_runs_three_replicas_behind_one_name() -> None:
    """The sensor service has deploy.replicas 3, no fixed ports, and is reached as sensor:8002."""
    sensor = services()["sensor"]
    assert sensor["deploy"]["replicas"] == 3
    assert "ports" not in sensor
    assert "container_name" not in sensor
    for svc in app_services().values():
        assert svc["environment"]["SENSOR_SERVICE_URLS"] == "http://sensor:8002"


def test_compose_postgres_is_official_on_5434_with_a_volume() -> None:
    """The official postgres image, published on host port 5434, data on a named volume."""
    postgres = services()["postgres"]
    assert postgres["image"].split(":")[0] == "postgres"
    assert any(str(p).endswith("5434:5432") for p in postgres["ports"])
    volume, _, target = postgres["volumes"][0].partition(":")
    assert volume in compose()["volumes"]
    assert target == "/var/lib/postgresql"


def test_compose_kafka_is_apache_kafka_in_kraft_combined_mode() -> None:
    """Apache Kafka's image, one node as broker and controller, a cluster id, a volume."""
    kafka = services()["kafka"]
    env = kafka["environment"]
    assert kafka["image"].split(":")[0] == "apache/kafka"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["CLUSTER_ID"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    volume, _, target = kafka["volumes"][0].partition(":")
    assert volume in compose()["volumes"]
    assert target == env["KAFKA_LOG_DIRS"]
    for svc in app_services().values():
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert svc["environment"]["KAFKA_IDEMPOTENCE"] == "true"


def test_compose_spools_have_a_named_volume_per_instance() -> None:
    """Gateways and the event service mount their own volume on the image's spool dir."""
    spool_dirs = {
        "gateway": image_env()["GATEWAY_SPOOL_DIR"],
        "events": image_env()["EVENTS_SPOOL_DIR"],
    }
    seen: set[str] = set()
    for name, svc in app_services().items():
        service = svc["environment"]["SERVICE"]
        if service not in spool_dirs:
            assert "volumes" not in svc
            continue
        (mount,) = svc["volumes"]
        volume, _, target = mount.partition(":")
        assert target == spool_dirs[service], name
        assert volume in compose()["volumes"]
        assert volume not in seen
        seen.add(volume)
    assert len(seen) == 3


def test_compose_nginx_fronts_both_gateways_on_8000() -> None:
    """The nginx service publishes 8000, mounts deploy/nginx/nginx.conf, waits for gateways."""
    nginx = services()["nginx"]
    assert "8000:8000" in nginx["ports"]
    source, target, *_ = nginx["volumes"][0].split(":")
    assert (ROOT / source).resolve() == NGINX_CONF
    assert target == "/etc/nginx/nginx.conf"
    assert set(nginx["depends_on"]) == {"gateway-1", "gateway-2"}


# --------------------------------------------------------------------------- nginx


def nginx_version(binary: str) -> tuple[int, ...]:
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", run(binary, "-v").stderr)
    assert found is not None
    return tuple(int(part) for part in found.groups())


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    """The config passes `nginx -t` (gateway hosts mapped to localhost, which resolves here)."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    text = re.sub(r"\bgateway-\d+:", "localhost:", NGINX_CONF.read_text())
    if nginx_version(binary) < NGINX_RESOLVE_SINCE:
        text = re.sub(r"(\bserver\s+\S+)\s+resolve\b", r"\1", text)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = run(binary, "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", "stderr")
    assert result.returncode == 0, result.stderr


def nginx_directives() -> list[list[str]]:
    """Each directive as its words, comments dropped (good enough for this flat file)."""
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    return [shlex.split(d.replace("{", "").replace("}", "")) for d in text.split(";")]


def test_nginx_balances_gateways_with_passive_health_and_keepalive() -> None:
    """Both gateways with max_fails/fail_timeout, a keepalive pool and HTTP/1.1 upstream."""
    directives = nginx_directives()
    servers = [d for d in directives if d and d[0] == "server" and ":" in d[1]]
    assert [d[1] for d in servers] == ["gateway-1:8000", "gateway-2:8000"]
    for server in servers:
        assert any(w.startswith("max_fails=") for w in server)
        assert any(w.startswith("fail_timeout=") for w in server)
    assert any(d[:1] == ["keepalive"] for d in directives)
    assert ["proxy_http_version", "1.1"] in directives
    assert ["proxy_set_header", "Connection", ""] in directives


def test_nginx_retries_only_idempotent_requests() -> None:
    """Retries to the next gateway skip non-idempotent requests and the gateway's honest 503."""
    (retry,) = [d for d in nginx_directives() if d[:1] == ["proxy_next_upstream"]]
    assert {"error", "timeout"} <= set(retry)
    assert "non_idempotent" not in retry
    assert "http_503" not in retry


def test_nginx_body_limit_and_forwarded_headers() -> None:
    """The body limit equals the gateway's; X-Forwarded-For and X-Request-ID are passed."""
    directives = nginx_directives()
    (limit,) = [d[1] for d in directives if d[:1] == ["client_max_body_size"]]
    assert limit.endswith("m")
    assert int(limit[:-1]) * 1024 * 1024 == GatewaySettings.model_fields["max_body_bytes"].default
    headers = {d[1].lower() for d in directives if d[:1] == ["proxy_set_header"]}
    assert {"x-forwarded-for", "x-request-id", "x-forwarded-proto"} <= headers


# --------------------------------------------------------------------------- Kubernetes


@cache
def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


def k8s_files() -> list[str]:
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_objects() -> list[dict[str, Any]]:
    return [
        doc
        for name in k8s_files()
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc is not None
    ]


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    return {**k8s("Deployment"), **k8s("StatefulSet")}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def labels_match(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", k8s_files())
def test_k8s_manifest_validates_against_the_api_schema(name: str, version: str) -> None:
    """Every object in the file passes kubernetes-validate, strict (no unknown fields)."""
    for doc in yaml.safe_load_all((K8S / name).read_text()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest_and_generator_input() -> None:
    """Every manifest is a resource, generator inputs exist, secrets.env is git-ignored."""
    assert sorted(kustomization()["resources"]) == k8s_files()
    # Common labels reach the immutable volumeClaimTemplates: nothing that changes per release.
    for group in kustomization()["labels"]:
        assert "app.kubernetes.io/version" not in group["pairs"]
    (config,) = kustomization()["configMapGenerator"]
    (secret,) = kustomization()["secretGenerator"]
    assert all((K8S / f).exists() for f in config["envs"])
    assert secret["envs"] == ["secrets.env"]
    assert (K8S / "secrets.env.example").exists()
    assert "secrets.env" in (K8S / ".gitignore").read_text().split()


def config_and_secret_refs(node: object) -> Iterator[str]:
    """Names of the ConfigMaps and Secrets that env, envFrom and volumes refer to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"configMapRef", "configMapKeyRef", "secretRef", "secretKeyRef"}:
                yield value["name"]
            elif key in {"configMap", "secret"} and isinstance(value, dict):
                yield value.get("name", value.get("secretName"))
            else:
                yield from config_and_secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from config_and_secret_refs(item)


def kustomize_command() -> list[str]:
    if binary := shutil.which("kustomize"):
        return [binary, "build"]
    if binary := shutil.which("kubectl"):
        return [binary, "kustomize"]
    pytest.skip("neither kustomize nor kubectl is installed")


def test_kustomize_output_validates(tmp_path: Path) -> None:
    """The rendered kustomization validates, and every generated name reference resolves."""
    command = kustomize_command()
    workdir = tmp_path / "k8s"
    shutil.copytree(K8S, workdir)
    shutil.copy(workdir / "secrets.env.example", workdir / "secrets.env")
    result = run(*command, str(workdir))
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    for doc in objects:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "sensor-backend"
    generated = {o["metadata"]["name"] for o in objects if o["kind"] in {"ConfigMap", "Secret"}}
    refs = list(config_and_secret_refs(objects))
    assert refs
    assert set(refs) <= generated


@pytest.mark.parametrize("name", sorted(workloads()))
def test_k8s_workload_probes_resources_and_security(name: str) -> None:
    """Readiness on /health/ready, liveness on /health/live, requests and limits, non-root."""
    workload = workloads()[name]
    pod = workload["spec"]["template"]["spec"]
    main = container(workload)
    assert main["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= main["resources"][bound].keys()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid()
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "/tmp" in {m["mountPath"] for m in main["volumeMounts"]}  # noqa: S108 - a mount path
    assert pod["terminationGracePeriodSeconds"] >= 30
    # Service links would inject e.g. SENSOR_PORT=tcp://... into the settings' port.
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("name", sorted(workloads()))
def test_k8s_workload_runs_its_service_with_real_settings(name: str) -> None:
    """The args select the service, ports match, and the settings read every env name."""
    main = container(workloads()[name])
    env = {e["name"]: e for e in main["env"]}
    service = env["SERVICE"]["value"]
    assert main["args"] == [f"sensor-{service}"]
    assert main["args"][0] in PYPROJECT["project"]["scripts"]
    assert main["ports"][0]["containerPort"] == SERVICE_PORTS[service]
    assert env[f"{service.upper()}_PORT"]["value"] == str(SERVICE_PORTS[service])
    assert set(env) - IMAGE_ONLY_ENV <= settings_env_names()
    secret_keys = env_file(K8S / "secrets.env.example").keys()
    for entry in env.values():
        if ref := entry.get("valueFrom", {}).get("secretKeyRef"):
            assert ref["name"] == "sensor-backend-secrets"
            assert ref["key"] in secret_keys


def test_k8s_config_and_secret_names_are_real_settings() -> None:
    """The ConfigMap and Secret inputs hold only names the services read, none in both."""
    config = env_file(K8S / "config.env")
    secrets = env_file(K8S / "secrets.env.example")
    assert config.keys() <= settings_env_names()
    assert secrets.keys() <= settings_env_names()
    assert not config.keys() & secrets.keys()
    assert config["SENSOR_BACKEND_ENV"] == "production"
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert config["SENSOR_SERVICE_URLS"] == "http://sensor:8002"


def k8s_env(name: str, secrets: Mapping[str, str]) -> dict[str, str]:
    """What a workload's container sees: image ENV, config.env, then its own env entries."""
    env = {**image_env(), **env_file(K8S / "config.env")}
    for entry in container(workloads()[name])["env"]:
        source = entry.get("valueFrom", {})
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in source:
            env[entry["name"]] = secrets[source["secretKeyRef"]["key"]]
        else:
            assert source["fieldRef"]["fieldPath"] == "metadata.name"
            env[entry["name"]] = f"{name}-0"
    return env


@pytest.mark.parametrize("name", sorted(workloads()))
def test_k8s_environment_makes_valid_production_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With real secrets, each workload's env loads: production, 0.0.0.0, its port."""
    example = env_file(K8S / "secrets.env.example")
    secrets = {
        key: value.replace("changeme", "s3cr3t-from-a-vault") for key, value in example.items()
    }
    settings = load_settings(monkeypatch, k8s_env(name, secrets))
    assert_production_container(settings)
    assert settings.instance_id == f"{name}-0"


@pytest.mark.parametrize("name", ["auth", "sensor"])
def test_k8s_example_secrets_stop_the_services(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Left unreplaced, secrets.env.example's placeholders make the services refuse."""
    example = env_file(K8S / "secrets.env.example")
    assert {example["ADMIN_PASSWORD"], example["SERVICE_ACCOUNT_PASSWORD"]} <= PLACEHOLDER_SECRETS
    with pytest.raises(ValidationError, match="placeholder"):
        load_settings(monkeypatch, k8s_env(name, example))


def test_k8s_postgres_and_kafka_are_external_names() -> None:
    """The postgres and kafka Services are ExternalNames pointing out of the namespace."""
    for name in ("postgres", "kafka"):
        spec = k8s("Service")[name]["spec"]
        assert spec["type"] == "ExternalName"
        assert spec["externalName"].endswith(".svc.cluster.local")
    assert "@postgres:5432/" in env_file(K8S / "secrets.env.example")["DATABASE_URL"]
    assert env_file(K8S / "config.env")["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


@pytest.mark.parametrize("name", ["sensor", "gateway"])
def test_k8s_hpa_targets_an_existing_workload(name: str) -> None:
    """The sensor service and the gateway have an autoscaling/v2 HPA on a real workload."""
    hpa = k8s("HorizontalPodAutoscaler")[name]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert workloads()[target["name"]]["kind"] == target["kind"]
    assert hpa["spec"]["minReplicas"] >= 2
    # The HPA owns the replica count; a fixed one would be reset on every apply.
    assert "replicas" not in workloads()[target["name"]]["spec"]


@pytest.mark.parametrize("name", sorted(workloads()))
def test_k8s_workload_has_a_service_and_a_disruption_budget(name: str) -> None:
    """A Service and a PodDisruptionBudget select each workload's pods."""
    workload = workloads()[name]
    service = k8s("Service")[name]
    assert labels_match(service["spec"]["selector"], workload)
    assert service["spec"]["ports"][0]["port"] == container(workload)["ports"][0]["containerPort"]
    pdb = k8s("PodDisruptionBudget")[name]
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], workload)


@pytest.mark.parametrize("name", ["events", "gateway"])
def test_k8s_spools_live_on_persistent_volume_claims(name: str) -> None:
    """Events and gateway are StatefulSets with a retained PVC on the image's spool dir."""
    workload = workloads()[name]
    assert workload["kind"] == "StatefulSet"
    (claim,) = workload["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(workload)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == image_env()[f"{name.upper()}_SPOOL_DIR"]
    assert workload["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_k8s_gateway_drains_before_sigterm() -> None:
    """The gateway sleeps in preStop, and its grace period covers that plus shutdown."""
    gateway = workloads()["gateway"]
    command = container(gateway)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30 + int(
        command[1]
    )
