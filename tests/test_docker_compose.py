"""Static checks of the container deployment (docker/): no container engine needed, and fast.

The images are built and the stack is started by hand with scripts/container_smoke.sh
(docs/containers.md has its measured runs); these tests check, on every CI run and without
building anything, what can be checked without an engine: the compose file's structure, that
the services agree with each other (hosts, ports, credentials, bucket, pool and deployment
names), that every file the Dockerfiles and compose files refer to exists and is sent in the
build context, that the commands the containers run exist in this project, and the same
wiring again for the stack the smoke script starts: compose.yaml merged with
compose.smoke.yaml (no MinIO, artifacts on a volume, a locally built PostgreSQL).
`docker compose config` runs too when the compose plugin is installed.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from serving_image import serve_lock_script

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
SMOKE_FILE = DOCKER / "compose.smoke.yaml"
SMOKE_SCRIPT = ROOT / "scripts" / "container_smoke.sh"

LONG_RUNNING = ("postgres", "minio", "mlflow", "prefect-server", "prefect-worker", "model-server")
PUBLISHED = {5000: "mlflow", 4200: "prefect-server", 5001: "model-server", 9001: "minio"}
CHAMPION_URI = "models:/ser-emotion@champion"


# ---------------------------------------------------------------------------------------------
# helpers


class ComposeTag:
    """A value tagged ``!override`` or ``!reset`` in a compose file."""

    def __init__(self, tag: str, value: object) -> None:
        self.tag, self.value = tag, value


class ComposeLoader(yaml.SafeLoader):
    """YAML of the compose specification: knows the merge tags ``!override`` and ``!reset``."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> ComposeTag:
    if isinstance(node, yaml.MappingNode):
        value: object = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return ComposeTag(node.tag, value)


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(_tag, _tagged)


def interpolate(value: object) -> object:
    """``${VAR:-default}`` / ``${VAR}`` with their defaults (no environment: deterministic)."""
    if isinstance(value, str):
        return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m[1] or "", value)
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, ComposeTag):
        return ComposeTag(value.tag, interpolate(value.value))
    return value


def load_compose(path: Path) -> dict:
    return interpolate(yaml.load(path.read_text(), Loader=ComposeLoader))


def merge_compose(base: object, override: object, key: str = "") -> object:
    """The compose specification's merge of an override file into a base, for what is used here.

    Mappings merge key by key; ``command`` and ``entrypoint`` are replaced; ``ports`` and
    other sequences are appended (``volumes`` replace the entry with the same target);
    ``!override`` replaces a value whole, ``!reset`` removes it.
    """
    if isinstance(override, ComposeTag):
        return None if override.tag == "!reset" else override.value
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            if isinstance(value, ComposeTag) and value.tag == "!reset":
                merged.pop(name, None)
            elif name in merged:
                merged[name] = merge_compose(merged[name], value, name)
            else:
                merged[name] = value.value if isinstance(value, ComposeTag) else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if key in ("command", "entrypoint"):
            return override
        if key == "volumes":
            targets = {target for _, target in mounts({"volumes": override})}
            kept = [v for v in base if mounts({"volumes": [v]})[0][1] not in targets]
            return kept + override
        return base + [item for item in override if item not in base]
    return override


def active_services(compose: dict) -> dict:
    """The services `up` starts: those without ``profiles`` (no profile is requested)."""
    return {name: s for name, s in compose["services"].items() if not s.get("profiles")}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(COMPOSE_FILE)


@pytest.fixture(scope="module")
def production(compose) -> dict:
    """The services of compose.yaml (MinIO and all)."""
    return compose["services"]


@pytest.fixture(scope="module")
def smoke_compose(compose) -> dict:
    return merge_compose(compose, load_compose(SMOKE_FILE))


@pytest.fixture(scope="module")
def smoke(smoke_compose) -> dict:
    """The services scripts/container_smoke.sh starts: compose.yaml + compose.smoke.yaml."""
    return active_services(smoke_compose)


@pytest.fixture(scope="module", params=["compose.yaml", "compose.yaml+compose.smoke.yaml"])
def services(request, production, smoke) -> dict:
    """Each stack that gets started: the production one and the smoke test's."""
    return production if request.param == "compose.yaml" else smoke


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def locked_versions(path: Path) -> dict[str, str]:
    """``{name: version}`` of a hashed lock file (``name==version \\`` lines)."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)", path.read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def option(args: list[str], name: str) -> str:
    """The value after ``name`` in an argument list."""
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def depends_on(service: dict) -> dict[str, dict]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def mounts(service: dict) -> list[tuple[str, str]]:
    """``(source, target)`` of every volume entry (short syntax or long syntax)."""
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry.get("source", ""), entry["target"]
        found.append((source, target))
    return found


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith(("/", ".", "~", "$"))


def published_ports(service: dict) -> list[tuple[int, int]]:
    """``(host, container)`` pairs of a service's ``ports``."""
    pairs = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            pairs.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) >= 2, f"port {entry!r} has no host port (publishes a random one)"
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def healthcheck_port(service: dict) -> int | None:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    match = re.search(r"(?:127\.0\.0\.1|localhost):(\d+)", text)
    return int(match.group(1)) if match else None


def build_dockerfile(service: dict) -> Path:
    build = service["build"]
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    return context / build.get("dockerfile", "Dockerfile")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    result, pending = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copy_sources(dockerfile: Path) -> list[str]:
    """Sources of the COPY/ADD instructions that read the build context."""
    sources = []
    for keyword, args in instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        parts = exec_form(args)
        flags = [p for p in parts if p.startswith("--")]
        if any(flag.startswith("--from=") for flag in flags):
            continue
        paths = [p for p in parts if not p.startswith("--")]
        sources += paths[:-1]
    return sources


def dockerignored(patterns: list[str], path: str) -> bool:
    """Whether ``path`` is excluded (last matching pattern wins; a match on a parent counts)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            excluded = not negate
    return excluded


def ignore_patterns(dockerfile: Path) -> list[str]:
    path = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert path.is_file(), f"{path.relative_to(ROOT)} missing (the context would include .venv)"
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def dependency_names(pyproject: dict) -> set[str]:
    return {
        re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower()
        for spec in pyproject["project"]["dependencies"]
    }


def dependency_spec(pyproject: dict, name: str) -> str:
    for spec in pyproject["project"]["dependencies"]:
        if re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower() == name:
            return spec
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


def dockerfiles(services: dict) -> list[Path]:
    return sorted({build_dockerfile(s) for s in services.values() if "build" in s})


# ---------------------------------------------------------------------------------------------
# structure


def test_the_six_long_running_services_exist(production):
    assert set(LONG_RUNNING) <= set(production)
    for name, service in production.items():
        if name not in LONG_RUNNING:  # one-shot init services only
            assert str(service.get("restart", "no")) == "no", name
            assert "ports" not in service, name


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck_and_restarts(production, name):
    service = production[name]
    check = service.get("healthcheck")
    assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    assert service.get("restart") == "unless-stopped", name


def test_depends_on_targets_exist_and_conditions_make_sense(services):
    for name, service in services.items():
        for target, spec in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} cannot become healthy"
            elif condition == "service_completed_successfully":
                assert str(services[target].get("restart", "no")) == "no", target
            else:
                assert condition == "service_started", f"{name} -> {target}: {condition}"


def test_startup_order(production):
    services = production
    healthy = {
        name: {
            target
            for target, spec in depends_on(service).items()
            if (spec or {}).get("condition") == "service_healthy"
        }
        for name, service in services.items()
    }
    assert {"postgres", "minio"} <= healthy["mlflow"]
    assert "postgres" in healthy["prefect-server"]
    assert {"prefect-server", "mlflow"} <= healthy["prefect-worker"]
    assert "mlflow" in healthy["model-server"]
    assert depends_on(services["mlflow"])["minio-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_named_volumes_are_declared_and_the_state_is_on_volumes(compose, production):
    services = production
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for source, _ in mounts(service):
            if is_named_volume(source):
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"

    def volume_at(service: str, target: str) -> str:
        for source, mounted in mounts(services[service]):
            if mounted == target and is_named_volume(source):
                return source
        raise AssertionError(f"{service}: no named volume at {target}")

    pgdata = environment(services["postgres"]).get("PGDATA", "/var/lib/postgresql/data")
    volume_at("postgres", pgdata)
    minio_data = option(command(services["minio"]), "server")
    volume_at("minio", minio_data)
    volume_at("prefect-server", "/var/lib/prefect")  # PREFECT_HOME of the worker image
    volume_at("prefect-worker", "/app/data")
    assert "PREFECT_HOME=/var/lib/prefect" in (DOCKER / "Dockerfile.worker").read_text()


def test_bind_mounted_files_exist(services):
    for name, service in services.items():
        for source, _ in mounts(service):
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name}: {source} missing"


def test_postgres_creates_both_databases(services):
    env = environment(services["postgres"])
    assert env["POSTGRES_DB"] == "mlflow"
    init = [target for source, target in mounts(services["postgres"]) if source.startswith(".")]
    assert any(t.startswith("/docker-entrypoint-initdb.d/") for t in init)
    sql = (DOCKER / "postgres-init.sql").read_text()
    assert re.search(r"CREATE DATABASE prefect\b", sql)


# ---------------------------------------------------------------------------------------------
# images and build contexts


def test_build_dockerfiles_exist_relative_to_their_context(services):
    built = {name for name, service in services.items() if "build" in service}
    assert {"mlflow", "prefect-server", "prefect-worker", "model-server"} <= built
    for name in built:
        dockerfile = build_dockerfile(services[name])
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        assert (COMPOSE_FILE.parent / services[name]["build"]["context"]).resolve() == ROOT
        assert services[name].get("image"), f"{name}: built image has no tag"


def test_prefect_server_and_worker_share_one_image(services):
    server, worker = services["prefect-server"], services["prefect-worker"]
    assert server["image"] == worker["image"]
    assert server["build"] == worker["build"]
    assert build_dockerfile(worker).name == "Dockerfile.worker"
    assert build_dockerfile(services["model-server"]).name == "Dockerfile.serve"


def test_dockerfile_copy_sources_exist_and_are_in_the_context(services):
    for dockerfile in dockerfiles(services):
        patterns = ignore_patterns(dockerfile)
        for heavy in (".venv", "data", "mlruns", ".git"):
            assert dockerignored(patterns, heavy), f"{dockerfile.name}: {heavy} is sent"
        for source in copy_sources(dockerfile):
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: not in the repo"
            assert not dockerignored(patterns, source), (
                f"{dockerfile.name}: COPY {source} is excluded by its .dockerignore"
            )


IMAGE_DOCKERFILES = (
    "Dockerfile.worker",
    "Dockerfile.serve",
    "Dockerfile.mlflow",
    "smoke/Dockerfile.postgres",
)
SHARED_LAYERS_END = "# ---- above: shared with"


@pytest.mark.parametrize("name", IMAGE_DOCKERFILES)
def test_every_image_builds_from_a_base_argument_runs_as_non_root_and_has_a_healthcheck(name):
    """Built unchanged from a public base by default, from a local one with --build-arg."""
    text = (DOCKER / name).read_text()
    steps = instructions(DOCKER / name)
    default = "debian:bookworm-slim" if "postgres" in name else "python:3.11-slim-bookworm"
    assert f"ARG BASE_IMAGE={default}" in text
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms[-1] == "${BASE_IMAGE}", "the final stage is the base image"
    assert all(args == "${BASE_IMAGE}" or args.startswith("scratch AS ") for args in froms)
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as non-root"
    assert any(keyword == "HEALTHCHECK" for keyword, _ in steps)
    # Everything installs from wheels: no compilers in any layer.
    assert not re.search(r"build-essential|\bgcc\b|python3-dev", text)
    for keyword, args in steps:
        if keyword == "RUN" and "apt-get install" in args:
            assert "--no-install-recommends" in args and "rm -rf /var/lib/apt/lists/*" in args
        if keyword == "RUN" and "pip install" in args:
            assert "PIP_NO_CACHE_DIR=1" in text or "--no-cache-dir" in args
    assert "ca-certificates.crt" not in text, "the host CA bundle is mounted, never copied"


@pytest.mark.parametrize(
    ("name", "lock"),
    [("Dockerfile.worker", "requirements.lock"), ("Dockerfile.serve", "requirements-serve.lock")],
)
def test_project_images_install_their_lock(name, lock, pyproject):
    text = (DOCKER / name).read_text()
    assert "openjdk-17-jre-headless" in text
    assert "KERAS_BACKEND=torch" in text
    # torch first, the CPU build, at pyproject's pin, from the index or the torch-wheels context.
    torch = dependency_spec(pyproject, "torch")
    assert torch == "torch==2.13.0"
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert f'--index-url "$TORCH_INDEX_URL" {torch}' in text
    assert "from=torch-wheels" in text and "FROM scratch AS torch-wheels" in text
    # then its lock, hash-checked and checked whole, then the project without dependencies.
    assert f"pip install --require-hashes --no-deps -r /tmp/{lock}" in text
    assert text.index(f"--no-deps --no-index --find-links /tmp/torch-wheels {torch}") < text.index(
        "--require-hashes"
    )
    assert re.search(r"pip install --no-deps --no-build-isolation /(app|src)\b", text)
    steps = instructions(DOCKER / name)
    install_lock = next(
        i for i, (_, a) in enumerate(steps) if "--require-hashes" in a and f"/tmp/{lock}" in a
    )
    assert "pip check" in steps[install_lock][1]
    # The dependency layers come before the sources (cached while only the sources change).
    for source in ("ser_features", "experiments", "flows", "pyproject.toml", "README.md"):
        copies = [i for i, (k, a) in enumerate(steps) if k == "COPY" and source in a.split()]
        assert copies and min(copies) > install_lock, f"{name}: COPY {source} before the lock"


def test_worker_and_serve_images_share_their_dependency_layers():
    worker = (DOCKER / "Dockerfile.worker").read_text()
    serve = (DOCKER / "Dockerfile.serve").read_text()

    def shared(text: str) -> str:
        return text[text.index("ARG BASE_IMAGE=") : text.index(SHARED_LAYERS_END)]

    assert shared(worker) == shared(serve), "same instructions, so the layers are built once"


def test_serving_lock_is_the_closure_of_what_serving_needs_at_the_projects_versions():
    """docker/requirements-serve.lock is current (refresh-serve-lock.py would write the same)
    and every entry, hashes included, is requirements.lock's."""
    script = serve_lock_script()
    served = script.lock_entries(script.SERVE_LOCK)
    project = script.lock_entries(script.PROJECT_LOCK)
    expected = script.closure(script.SERVING_ROOTS) - script.NOT_LOCKED
    assert set(served) == expected, f"run {script.__file__}"
    assert all(served[name] == project[name] for name in served)
    # what the image leaves out: training, orchestration, the app, the tracking server
    for left_out in ("h2o", "prefect", "dask", "gradio", "matplotlib", "mlflow", "sqlalchemy"):
        assert left_out not in served, left_out
    assert {"mlflow-skinny", "uvicorn", "jpype1", "keras", "silero-vad"} <= set(served)


def test_serving_image_cmd_and_healthcheck():
    steps = instructions(DOCKER / "Dockerfile.serve")
    cmd = exec_form(next(args for keyword, args in steps if keyword == "CMD"))
    assert cmd == [
        "mlflow",
        "models",
        "serve",
        "-m",
        CHAMPION_URI,
        "--env-manager",
        "local",
        "--host",
        "0.0.0.0",
        "--port",
        "5000",
    ]
    health = next(args for keyword, args in steps if keyword == "HEALTHCHECK")
    assert "127.0.0.1:5000/ping" in health


def test_mlflow_image_installs_its_lock_at_the_projects_versions():
    text = (DOCKER / "Dockerfile.mlflow").read_text()
    assert "COPY docker/requirements-mlflow.lock /tmp/requirements-mlflow.lock" in text
    assert "pip install --require-hashes --no-deps -r /tmp/requirements-mlflow.lock" in text
    image = locked_versions(DOCKER / "requirements-mlflow.lock")
    project = locked_versions(ROOT / "requirements.lock")
    assert {"mlflow", "psycopg2-binary", "boto3"} <= set(image)
    differ = {
        name: (version, project[name])
        for name, version in image.items()
        if name in project and project[name] != version
    }
    assert not differ, f"run docker/refresh-mlflow-lock.sh: {differ}"
    entries = re.split(r"\n(?=[A-Za-z0-9])", (DOCKER / "requirements-mlflow.lock").read_text())
    for entry in entries:
        if "==" in entry.split("\n", 1)[0]:
            assert "--hash=sha256:" in entry, entry.split()[0]
    # The local artifact root of the default command and of compose.smoke.yaml is writable.
    assert "/var/lib/mlflow/artifacts" in text and "chown -R mlflow:mlflow /var/lib/mlflow" in text


def test_entrypoint_scripts():
    script = DOCKER / "worker-entrypoint.sh"
    if shutil.which("sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    assert "prefect work-pool create" in text and "--type process" in text
    assert "deploy --name" in text and "prefect worker start" in text
    assert "--with-healthcheck" in text

    spec = importlib.util.spec_from_file_location(
        "serve_entrypoint", DOCKER / "serve-entrypoint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cmd = exec_form(next(a for k, a in instructions(DOCKER / "Dockerfile.serve") if k == "CMD"))
    assert module.model_alias(cmd) == ("ser-emotion", "champion")
    assert module.model_alias(["mlflow", "--version"]) is None


# ---------------------------------------------------------------------------------------------
# wiring between services


def test_model_server_serves_the_champion(services):
    args = command(services["model-server"])
    assert args[:3] == ["mlflow", "models", "serve"]
    assert option(args, "-m") == CHAMPION_URI
    assert option(args, "--env-manager") == "local"
    assert option(args, "--host") == "0.0.0.0"
    port = int(option(args, "--port"))
    published = published_ports(services["model-server"])
    assert len(published) == 1 and published[0][1] == port, published
    if "minio" in services:  # compose.yaml itself
        assert published == [(5001, port)]
    assert healthcheck_port(services["model-server"]) == port
    assert "/ping" in " ".join(services["model-server"]["healthcheck"]["test"])


def test_tracking_uri_points_at_the_mlflow_service(services):
    mlflow_args = command(services["mlflow"])
    port = int(option(mlflow_args, "--port"))
    assert option(mlflow_args, "--host") == "0.0.0.0"
    allowed = environment(services["mlflow"])["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for name in ("prefect-worker", "model-server"):
        env = environment(services[name])
        assert env.get("KERAS_BACKEND") == "torch", name
        uri = urlsplit(env["MLFLOW_TRACKING_URI"])
        assert (uri.scheme, uri.hostname, uri.port) == ("http", "mlflow", port), name
        # MLflow 3 answers 403 to Host headers outside its allow-list.
        assert any(fnmatch.fnmatch(uri.netloc, pattern) for pattern in allowed), uri.netloc
    assert healthcheck_port(services["mlflow"]) == port
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_mlflow_backend_credentials_match_postgres(services):
    pg = environment(services["postgres"])
    uri = urlsplit(option(command(services["mlflow"]), "--backend-store-uri"))
    assert uri.scheme == "postgresql+psycopg2"
    assert uri.hostname == "postgres" and (uri.port or 5432) == 5432
    assert uri.username == pg["POSTGRES_USER"]
    assert uri.password == pg["POSTGRES_PASSWORD"]
    assert uri.path.lstrip("/") == pg["POSTGRES_DB"]


def test_prefect_database_credentials_match_the_init_sql(services):
    sql = (DOCKER / "postgres-init.sql").read_text()
    roles = dict(re.findall(r"CREATE ROLE (\w+) WITH LOGIN PASSWORD '([^']*)'", sql))
    owners = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))
    url = environment(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"]
    uri = urlsplit(url)
    assert uri.scheme == "postgresql+asyncpg"
    assert importlib.util.find_spec("asyncpg") is not None, "asyncpg comes with prefect"
    assert uri.hostname == "postgres" and (uri.port or 5432) == 5432
    database = uri.path.lstrip("/")
    assert owners.get(database) == uri.username
    assert roles.get(uri.username) == uri.password


def test_s3_credentials_endpoint_and_bucket_agree(production):
    services = production
    minio = environment(services["minio"])
    user, password = minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]
    assert len(password) >= 8, "MinIO refuses root passwords shorter than 8 characters"
    for name in ("mlflow",):  # clients reach the artifacts through the server
        env = environment(services[name])
        assert env["AWS_ACCESS_KEY_ID"] == user, name
        assert env["AWS_SECRET_ACCESS_KEY"] == password, name
        endpoint = urlsplit(env["MLFLOW_S3_ENDPOINT_URL"])
        assert (endpoint.hostname, endpoint.port) == ("minio", 9000), name

    mc = urlsplit(environment(services["minio-init"])["MC_HOST_local"])
    assert (mc.username, mc.password, mc.hostname, mc.port) == (user, password, "minio", 9000)
    destination = urlsplit(option(command(services["mlflow"]), "--artifacts-destination"))
    assert destination.scheme == "s3"
    assert f"local/{destination.netloc}" in command(services["minio-init"])
    assert "--console-address" in command(services["minio"])


def test_prefect_worker_talks_to_the_prefect_server(services):
    server_args = command(services["prefect-server"])
    assert server_args[:3] == ["prefect", "server", "start"]
    port = int(option(server_args, "--port"))
    assert option(server_args, "--host") == "0.0.0.0"
    api = urlsplit(environment(services["prefect-worker"])["PREFECT_API_URL"])
    assert (api.scheme, api.hostname, api.port, api.path) == (
        "http",
        "prefect-server",
        port,
        "/api",
    )
    assert healthcheck_port(services["prefect-server"]) == port
    assert "/api/health" in " ".join(services["prefect-server"]["healthcheck"]["test"])
    # The UI runs in the browser: its API address must be the published one.
    ui = urlsplit(environment(services["prefect-server"])["PREFECT_UI_API_URL"])
    assert (ui.hostname, ui.path) == ("localhost", "/api")
    assert (ui.port, port) in published_ports(services["prefect-server"])
    # The worker's own health endpoint (prefect worker --with-healthcheck, port 8080).
    assert healthcheck_port(services["prefect-worker"]) == 8080


def test_worker_deploys_the_retrain_deployment_of_prefect_yaml(services):
    env = environment(services["prefect-worker"])
    assert command(services["prefect-worker"]) == ["worker"]
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in project["deployments"]}
    assert env["SER_DEPLOYMENT"] in deployments
    deployment = deployments[env["SER_DEPLOYMENT"]]
    assert deployment["work_pool"]["name"] == env["SER_WORK_POOL"] == "ser-pool"
    entry_file, _, function = deployment["entrypoint"].partition(":")
    assert (ROOT / entry_file).is_file()
    assert f"def {function}(" in (ROOT / entry_file).read_text()
    # Relative paths of the deployment resolve against /app, where the sources are copied.
    config = deployment.get("parameters", {}).get("config_path")
    if config:
        assert (ROOT / config).is_file()
    overrides = json.loads(env["SER_RETRAIN_PARAMS"])
    for folder in overrides.get("data_folders", []):
        assert any(folder.startswith(target) for _, target in mounts(services["prefect-worker"]))


def test_published_host_ports_are_unique_and_only_the_uis(production):
    seen: dict[int, str] = {}
    for name, service in production.items():
        for host, _ in published_ports(service):
            assert host not in seen, f"host port {host} published by {seen[host]} and {name}"
            seen[host] = name
    assert seen == PUBLISHED


def test_container_commands_exist_in_this_project(pyproject, services):
    assert "ser" in pyproject["project"]["scripts"], "the worker image's `ser` command"
    module, _, attribute = pyproject["project"]["scripts"]["ser"].partition(":")
    source = ROOT / (module.replace(".", "/") + ".py")
    assert re.search(rf"^{attribute}\s*=", source.read_text(), re.M)
    names = dependency_names(pyproject)
    assert {"mlflow", "prefect"} <= names, "mlflow and prefect run in the project's images"
    assert command(services["mlflow"])[:2] == ["mlflow", "server"]


# ---------------------------------------------------------------------------------------------
# the smoke stack: compose.yaml + compose.smoke.yaml, started by scripts/container_smoke.sh


def test_smoke_override_only_adjusts_services_of_compose_yaml(production):
    override = load_compose(SMOKE_FILE)
    assert set(override) <= {"services", "volumes"}
    unknown = set(override["services"]) - set(production)
    assert not unknown, f"compose.smoke.yaml names services compose.yaml lacks: {unknown}"


def test_smoke_stack_runs_without_minio(smoke, smoke_compose):
    assert set(smoke) == set(LONG_RUNNING) - {"minio"}
    for name in ("minio", "minio-init"):
        assert smoke_compose["services"][name].get("profiles"), f"{name} would still start"
    for name, service in smoke.items():
        for target in depends_on(service):
            assert target in smoke, f"{name} depends on {target}, which is not started"
    assert set(depends_on(smoke["mlflow"])) == {"postgres"}


def test_smoke_mlflow_keeps_artifacts_on_a_declared_volume(smoke, smoke_compose):
    args = command(smoke["mlflow"])
    assert args[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in args, "clients reach the artifacts through the server only"
    destination = option(args, "--artifacts-destination")
    assert destination.startswith("/"), "a local folder in place of s3://"
    volume = next(src for src, target in mounts(smoke["mlflow"]) if target == destination)
    assert is_named_volume(volume) and volume in (smoke_compose.get("volumes") or {})
    assert destination in (DOCKER / "Dockerfile.mlflow").read_text(), "owned by the mlflow user"
    # Everything else of the server is compose.yaml's.
    production_args = command(load_compose(COMPOSE_FILE)["services"]["mlflow"])
    assert option(args, "--backend-store-uri") == option(production_args, "--backend-store-uri")
    assert [a for a in args if a != destination] == [
        a for a in production_args if a != option(production_args, "--artifacts-destination")
    ]
    used = {src for s in smoke.values() for src, _ in mounts(s) if is_named_volume(src)}
    assert used <= set(smoke_compose["volumes"])


def test_smoke_postgres_image_follows_the_official_images_contract(smoke, production):
    postgres = smoke["postgres"]
    assert build_dockerfile(postgres) == DOCKER / "smoke" / "Dockerfile.postgres"
    assert environment(postgres) == environment(production["postgres"])
    assert mounts(postgres) == mounts(production["postgres"])
    text = (DOCKER / "smoke" / "Dockerfile.postgres").read_text()
    assert "postgresql-15" in text and "PGDATA=/var/lib/postgresql/data" in text
    assert ("postgres-data", "/var/lib/postgresql/data") in mounts(postgres)
    entrypoint = DOCKER / "smoke" / "postgres-entrypoint.sh"
    if shutil.which("sh"):
        subprocess.run(["sh", "-n", str(entrypoint)], check=True)
    script = entrypoint.read_text()
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert name in script
    assert "/docker-entrypoint-initdb.d/*.sql" in script and "ON_ERROR_STOP=1" in script
    assert "listen_addresses='*'" in script and "scram-sha-256" in script
    # The health check the compose file gives it finds pg_isready on the image's PATH.
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "PATH=/usr/lib/postgresql/15/bin" in text


def test_smoke_ports_are_loopback_only_and_the_scripts(smoke, production):
    production_ports = {host for s in production.values() for host, _ in published_ports(s)}
    seen: dict[int, str] = {}
    for name, service in smoke.items():
        for entry in service.get("ports") or []:
            assert str(entry).startswith("127.0.0.1:"), f"{name}: {entry} is not loopback-only"
        for host, _ in published_ports(service):
            assert host not in seen and host not in production_ports, f"{name}: {host}"
            seen[host] = name
    script = SMOKE_SCRIPT.read_text()
    (serve_port,) = (host for host, _ in published_ports(smoke["model-server"]))
    assert f"SERVE_PORT={serve_port} " in script
    # The Prefect UI's API address follows the published port.
    ui = urlsplit(environment(smoke["prefect-server"])["PREFECT_UI_API_URL"])
    assert (ui.port, 4200) in published_ports(smoke["prefect-server"])


def test_smoke_script_builds_every_image_the_stack_runs(smoke):
    script = SMOKE_SCRIPT.read_text()
    subprocess.run(["bash", "-n", str(SMOKE_SCRIPT)], check=True)
    built = dict(re.findall(r"^step \"build [^\"]+\" build_image (\S+) (\S+)$", script, re.M))
    assert 'args+=(--build-context "torch-wheels=' in script
    for name, service in smoke.items():
        if "build" not in service:
            continue
        image = service["image"].removesuffix(":latest").removeprefix("ser-automl/")
        assert image in built, f"{name}: the script does not build {service['image']}"
        assert ROOT / built[image] == build_dockerfile(service), name
    assert "-f docker/compose.yaml -f docker/compose.smoke.yaml" in script
    assert "up -d --no-build" in script and "down -v" in script
    assert "trap on_exit EXIT" in script
    retrain = re.search(r"ser retrain --config (\S+)", script)
    assert retrain and (ROOT / retrain[1]).is_file()
    assert "/invocations" in script and 'echo "prediction ok: $EMOTION"' in script
    assert script.rstrip().endswith('echo "prediction ok: $EMOTION"'), "the last line printed"


# ---------------------------------------------------------------------------------------------
# the real parser, when the compose plugin is installed


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_docker_compose_config_accepts_the_file():
    if not _compose_plugin():
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_the_served_image_runs_the_scoring_server_as_ser_serve_does():
    from experiments.serving.command import HTTP_PROTOCOL

    text = (DOCKER / "Dockerfile.serve").read_text()
    assert f"UVICORN_HTTP={HTTP_PROTOCOL}" in text  # 413 body limit, clean JSON errors
    assert "MALLOC_ARENA_MAX=2" in text
