"""Kubernetes manifests: each overlay renders, validates, and is wired to the app and its image."""

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import project_files
import pytest
import yaml
from combinations import ALL_ON, BY_ID, COMBINATIONS, alone, params

K8S_COMBOS = [combo for combo in COMBINATIONS if combo.selected("use_kubernetes")]
# Kubernetes with no other option: nothing of a database, Redis or nginx may appear.
K8S_ALONE = alone("use_kubernetes")
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes deploy/k8s/README.md promises, and the newest schema the pinned
# kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
BIN = Path(sys.executable).parent
# Idle timeout of the usual proxies in front of a pod (ingress-nginx, cloud load balancers), s.
PROXY_IDLE_TIMEOUT = 60
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
# Probe -> the endpoint (blueprint.function) it must call.
APP_PROBE_ENDPOINTS = {
    "startupProbe": "health.healthz",
    "livenessProbe": "health.healthz",
    "readinessProbe": "health.readyz",
}
APP_FACTS = """
import json
from {package} import create_app
from {package}.settings.server import ServerSettings
app = create_app({{"app_env": "test", "database_url": "sqlite://"}})
server = ServerSettings()
print("FACTS=" + json.dumps({{
    "rules": {{rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}},
    "port": server.port,
    "graceful_timeout": server.graceful_timeout,
}}))
"""


def tool(name: str) -> str:
    """Return the path of a command installed beside this Python (the venv), or on PATH."""
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed: pip install -r requirements-dev.txt"
    return path


def kustomize_args(combo) -> list[str]:
    """Return kubectl kustomize's flags: the nginx template lives outside the kustomization."""
    return ["--load-restrictor", "LoadRestrictionsNone"] if combo.selected("use_nginx") else []


def render(root: Path, overlay: str, flags: list[str]) -> str:
    """Build one overlay with kubectl's kustomize; return the YAML stream."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", *flags, str(root / "deploy/k8s/overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess:
    """Run kubernetes-validate --strict on every document of the files."""
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_project(source: Path, parent: Path, with_secrets: bool) -> Path:
    """Copy a baked project into parent; create each overlay's secret.env from the example."""
    target = parent / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    if with_secrets:
        example = target / "deploy/k8s/secret.env.example"
        for overlay in OVERLAYS:
            shutil.copy(example, target / "deploy/k8s/overlays" / overlay / "secret.env")
    return target


@pytest.fixture(scope="session")
def project(bake, tmp_path_factory):
    """Return a function giving a copy of a combination's project, ready to build."""
    copies: dict[str, Path] = {}

    def _project(combo) -> Path:
        if combo.id not in copies:
            parent = tmp_path_factory.mktemp(combo.id)
            copies[combo.id] = copy_project(bake(combo), parent, with_secrets=True)
        return copies[combo.id]

    return _project


@pytest.fixture(scope="session")
def manifests(project):
    """Return a function giving {overlay: YAML stream} of a combination."""
    rendered: dict[str, dict[str, str]] = {}

    def _manifests(combo) -> dict[str, str]:
        if combo.id not in rendered:
            root = project(combo)
            rendered[combo.id] = {
                overlay: render(root, overlay, kustomize_args(combo)) for overlay in OVERLAYS
            }
        return rendered[combo.id]

    return _manifests


@pytest.fixture(scope="session")
def facts(project, clean_env, tmp_path_factory):
    """Return a function giving what the manifests must agree with, read from the baked project."""
    found: dict[str, dict] = {}

    def _facts(combo) -> dict:
        if combo.id not in found:
            root = project(combo)
            package = project_files.package_name(root)
            result = subprocess.run(
                [sys.executable, "-c", APP_FACTS.format(package=package)],
                cwd=tmp_path_factory.mktemp("facts"),
                env={**clean_env, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            (line,) = [x for x in result.stdout.splitlines() if x.startswith("FACTS=")]
            app = json.loads(line.removeprefix("FACTS="))
            uid, gid, sqlite_dir = dockerfile_user_and_data(root)
            found[combo.id] = {
                **app,
                "package": package,
                "slug": root.name,
                "uid": uid,
                "gid": gid,
                "sqlite_dir": sqlite_dir,
                "postgres": combo.selected("use_postgres"),
                "redis": combo.selected("use_redis"),
                "opentelemetry": combo.selected("use_opentelemetry"),
                "nginx": combo.selected("use_nginx"),
                "https": combo.selected("use_https"),
                "gunicorn": combo.selected("app_server=gunicorn"),
                "auth": combo.selected("use_auth"),
            }
            compose = project_files.compose_model(root)
            web = compose["services"][project_files.web_service(compose)].get("environment") or {}
            found[combo.id]["one_shot_env"] = {
                name: value
                for service in project_files.one_shot_services(compose).values()
                for name, value in (service.get("environment") or {}).items()
                if web.get(name) != value and name != "APP_ENV"
            }
            proxy = project_files.proxy_service(compose)
            if proxy:
                found[combo.id]["compose_nginx"] = nginx = compose["services"][proxy]
                # nginx built from a Dockerfile stage (with the assets) runs that stage's base.
                target = (nginx.get("build") or {}).get("target")
                found[combo.id]["nginx_image"] = (
                    project_files.stage_base(root / "Dockerfile", target)
                    if target
                    else nginx["image"]
                )
                found[combo.id]["nginx_template"] = (
                    root / "nginx/templates/default.conf.template"
                ).read_text()
        return found[combo.id]

    return _facts


def dockerfile_user_and_data(root: Path) -> tuple[int, int, str | None]:
    """Return the final USER's numeric uid and gid, and the SQLite folder the image points at."""
    user = project_files.final_user(root)
    assert user, "the Dockerfile sets no USER"
    uid, _, gid = user.partition(":")
    url = project_files.final_env(root).get("DATABASE_URL", "")
    sqlite = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    return int(uid), int(gid or uid), str(Path(sqlite).parent) if sqlite else None


def load(stream: str) -> list[dict]:
    """Parse a YAML stream into its documents."""
    return [doc for doc in yaml.safe_load_all(stream) if doc]


# ---- the checker: every rule the manifests must keep, each returning what it finds wrong ----


def one(docs: list[dict], kind: str) -> list[dict]:
    """Return the documents of one kind."""
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """Return (name, pod spec) of every Deployment, Job and CronJob (the pods of its Jobs)."""
    specs = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job", "CronJob"):
            spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            specs.append((f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]))
    return specs


def all_containers(spec: dict) -> list[dict]:
    """Return a pod's containers and init containers (native sidecars included)."""
    return [*spec.get("initContainers", []), *spec["containers"]]


def resolve_port(spec: dict, port) -> int | None:
    """Return a probe's or Service's port as a number, resolving a named container port."""
    if isinstance(port, int):
        return port
    for container in all_containers(spec):
        for declared in container.get("ports", []):
            if declared.get("name") == port:
                return declared["containerPort"]
    return None


def matches(labels: dict, selector: dict) -> bool:
    """Say whether labels satisfy a matchLabels-style selector."""
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: dict) -> dict:
    """Return the labels a workload gives its pods."""
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selected(docs: list[dict], selector: dict) -> list[dict]:
    """Return the Deployments whose pods a matchLabels-style selector picks."""
    return [d for d in one(docs, "Deployment") if selector and matches(pod_labels(d), selector)]


def web_workloads(docs: list[dict]) -> list[dict]:
    """Return the Deployments a Service sends traffic to, however many the manifests hold."""
    served = [
        d for service in one(docs, "Service") for d in selected(docs, service["spec"]["selector"])
    ]
    return [d for d in one(docs, "Deployment") if d in served]


def app_container(workload: dict) -> dict | None:
    """Return a workload's container named app (the project's image), or None."""
    containers = workload["spec"]["template"]["spec"]["containers"]
    return next((c for c in containers if c["name"] == "app"), None)


def check_pod_security(docs: list[dict], facts: dict) -> list[str]:
    """Every pod and container runs unprivileged, read-only, as the Dockerfile's user."""
    problems = []
    for name, spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        expected = {
            "runAsNonRoot": True,
            "runAsUser": facts["uid"],
            "runAsGroup": facts["gid"],
            "fsGroup": facts["gid"],
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        for key, value in expected.items():
            if pod.get(key) != value:
                problems.append(f"{name}: pod securityContext.{key} is {pod.get(key)!r}")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token")
        writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in all_containers(spec):
            where = f"{name} container {container['name']}"
            context = {**pod, **container.get("securityContext", {})}
            if not context.get("runAsUser") or context.get("runAsNonRoot") is not True:
                problems.append(f"{where}: may run as root")
            if context.get("privileged"):
                problems.append(f"{where}: is privileged")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allows privilege escalation")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            capabilities = context.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{where}: keeps Linux capabilities")
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if mounts.get("/tmp") not in writable:
                problems.append(f"{where}: /tmp is not an emptyDir")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{where}: no {resource} in resources.{kind}")
    return problems


def check_app_container(docs: list[dict], facts: dict) -> list[str]:
    """The app listens on gunicorn's port; its probes call the app's health routes there."""
    workloads = web_workloads(docs)
    if not workloads:
        return ["Deployment: no Service sends traffic to a Deployment"]
    return [problem for workload in workloads for problem in _check_web(workload, facts)]


def _check_web(deployment: dict, facts: dict) -> list[str]:
    """Check one web Deployment's app container, its probes, volumes and grace period."""
    problems = []
    spec = deployment["spec"]["template"]["spec"]
    apps = [c for c in spec["containers"] if c["name"] == "app"]
    if len(apps) != 1:
        return ["Deployment: no container named app"]
    app = apps[0]
    if "command" in app or "args" in app:
        problems.append("app: overrides the image's CMD")
    if [p["containerPort"] for p in app.get("ports", [])] != [facts["port"]]:
        problems.append(f"app: ports {app.get('ports')} are not gunicorn's {facts['port']}")
    for probe, endpoint in APP_PROBE_ENDPOINTS.items():
        action = app.get(probe, {}).get("httpGet")
        if not action:
            problems.append(f"app: no HTTP {probe}")
            continue
        if action["path"] != facts["rules"][endpoint]:
            problems.append(
                f"app: {probe} calls {action['path']}, not {facts['rules'][endpoint]} ({endpoint})"
            )
        if resolve_port(spec, action["port"]) != facts["port"]:
            problems.append(f"app: {probe} port {action['port']} is not {facts['port']}")
    if facts["sqlite_dir"]:
        writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in app.get("volumeMounts", [])}
        if mounts.get(facts["sqlite_dir"]) not in writable:
            problems.append(f"app: the SQLite folder {facts['sqlite_dir']} is not a volume")
    sleep = app.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= sleep + facts["graceful_timeout"]:
        problems.append(
            f"Deployment: terminationGracePeriodSeconds {grace} leaves no margin over preStop "
            f"{sleep} s + GRACEFUL_TIMEOUT {facts['graceful_timeout']} s"
        )
    if "replicas" in deployment["spec"]:
        problems.append("Deployment: sets replicas, which the HorizontalPodAutoscaler owns")
    return problems


def check_config_and_secret(docs: list[dict], facts: dict) -> list[str]:
    """Every workload reads the overlay's ConfigMap and Secret; production settings are set."""
    problems = []
    config_maps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in one(docs, "ConfigMap")}
    secrets = {doc["metadata"]["name"] for doc in one(docs, "Secret")}
    for name, spec in pod_specs(docs):
        main = spec["containers"][0]
        sources = main.get("envFrom", [])
        config = [s["configMapRef"]["name"] for s in sources if "configMapRef" in s]
        secret = [s["secretRef"]["name"] for s in sources if "secretRef" in s]
        if len(config) != 1 or config[0] not in config_maps:
            problems.append(f"{name}: does not read a rendered ConfigMap ({config})")
            continue
        if len(secret) != 1 or secret[0] not in secrets:
            problems.append(f"{name}: does not read a rendered Secret ({secret})")
        data = config_maps[config[0]]
        if data.get("APP_ENV") != "production" or data.get("PORT") != str(facts["port"]):
            problems.append(
                f"{name}: config has APP_ENV={data.get('APP_ENV')} PORT={data.get('PORT')}"
            )
        if not facts["gunicorn"]:
            if "KEEPALIVE" in data:  # granian keeps idle connections until the client closes
                problems.append(f"{name}: sets gunicorn's KEEPALIVE for granian")
        elif int(data.get("KEEPALIVE", 0)) <= PROXY_IDLE_TIMEOUT:
            problems.append(f"{name}: KEEPALIVE is not above proxies' idle timeout")
    return problems


def check_migrations(docs: list[dict], facts: dict) -> list[str]:
    """A migration Job exists exactly with Postgres, using the app's image and Secret."""
    jobs = one(docs, "Job")
    if not facts["postgres"]:
        return ["a Job exists without Postgres"] if jobs else []
    if len(jobs) != 1:
        return [f"{len(jobs)} Jobs with Postgres, expected the migration Job"]
    problems = []
    job = jobs[0]["spec"]["template"]["spec"]
    apps = [app_container(workload) for workload in web_workloads(docs)]
    if not apps or None in apps:
        return ["Job: no web Deployment runs the app to compare with"]
    app = apps[0]
    (container,) = job["containers"]
    command = container.get("command", []) + container.get("args", [])
    expected = ["flask", "--app", f"{facts['package']}:create_app()", "db", "upgrade"]
    if command != expected:
        problems.append(f"Job: runs {command}, expected {expected}")
    problems += runs_like_the_app("Job", container, app)
    if job.get("restartPolicy") != "Never":
        problems.append("Job: restartPolicy is not Never")
    job_env = {item["name"]: item.get("value") for item in container.get("env", [])}
    for name, value in facts["one_shot_env"].items():
        if job_env.get(name) != value:
            problems.append(f"Job: {name}={job_env.get(name)!r}, compose's one-shot sets {value!r}")
    return problems


def runs_like_the_app(kind: str, container: dict, app: dict) -> list[str]:
    """Check a one-shot container runs the app's image with the app's config and Secret."""
    problems = []
    if container["image"] != app["image"]:
        problems.append(f"{kind}: image {container['image']} is not the app's {app['image']}")
    if container.get("envFrom") != app.get("envFrom"):
        problems.append(f"{kind}: reads other config or Secret than the app")
    return problems


def check_audit_prune(docs: list[dict], facts: dict) -> list[str]:
    """A CronJob prunes the audit trail exactly with users on PostgreSQL (a job pod cannot reach
    a web pod's SQLite): `flask audit prune` from the app's image, one run at a time."""
    cronjobs = one(docs, "CronJob")
    if not (facts["auth"] and facts["postgres"]):
        return ["a CronJob exists without users on PostgreSQL"] if cronjobs else []
    if len(cronjobs) != 1:
        return [f"{len(cronjobs)} CronJobs with users on PostgreSQL, expected the audit prune"]
    problems = []
    cronjob = cronjobs[0]["spec"]
    pod = cronjob["jobTemplate"]["spec"]["template"]["spec"]
    apps = [app_container(workload) for workload in web_workloads(docs)]
    if not apps or None in apps:
        return ["CronJob: no web Deployment runs the app to compare with"]
    (container,) = pod["containers"]
    command = container.get("command", []) + container.get("args", [])
    expected = ["flask", "--app", f"{facts['package']}:create_app()", "audit", "prune"]
    if command != expected:
        problems.append(f"CronJob: runs {command}, expected {expected}")
    problems += runs_like_the_app("CronJob", container, apps[0])
    if cronjob.get("concurrencyPolicy") != "Forbid":
        problems.append("CronJob: concurrencyPolicy is not Forbid (two prunes could overlap)")
    if pod.get("restartPolicy") != "Never":
        problems.append("CronJob: restartPolicy is not Never")
    return problems


def check_image(docs: list[dict], facts: dict) -> list[str]:
    """The app's image is the project's, with the tag the overlay sets."""
    problems = []
    for name, spec in pod_specs(docs):
        image = spec["containers"][0]["image"]
        repository, _, tag = image.rpartition(":")
        if not tag or not repository.split("/")[-1] == facts["slug"]:
            problems.append(f"{name}: image {image} is not {facts['slug']}:<tag>")
    return problems


def check_nginx(docs: list[dict], facts: dict) -> list[str]:
    """An nginx sidecar exists exactly with nginx, configured like compose's but next door."""
    found = [
        (workload, container)
        for workload in one(docs, "Deployment")
        for container in all_containers(workload["spec"]["template"]["spec"])
        if "nginx" in container["image"] or container["name"] == "nginx"
    ]
    if not facts["nginx"]:
        return ["an nginx container exists without nginx"] if found else []
    if len(found) != 1:
        return [f"{len(found)} nginx containers, expected one sidecar"]
    (deployment, nginx), problems = found[0], []
    spec = deployment["spec"]["template"]["spec"]
    if deployment not in web_workloads(docs):
        problems.append("nginx: its Deployment gets no traffic from a Service")
    if nginx not in spec.get("initContainers", []) or nginx.get("restartPolicy") != "Always":
        problems.append("nginx: not a native sidecar (initContainers, restartPolicy Always)")
    compose = facts["compose_nginx"]
    if nginx["image"] != facts["nginx_image"]:
        problems.append(f"nginx: image {nginx['image']} is not compose's {facts['nginx_image']}")
    env = {item["name"]: item.get("value") for item in nginx.get("env", [])}
    expected = {key: str(value) for key, value in compose["environment"].items()}
    expected.update(NGINX_UPSTREAM_HOST="127.0.0.1", NGINX_UPSTREAM_PORT=str(facts["port"]))
    if "NGINX_REAL_IP_FROM" in expected:  # compose's Caddy; here any peer the policy admits
        expected["NGINX_REAL_IP_FROM"] = "0.0.0.0/0"
    if env != expected:
        problems.append(
            f"nginx: env {env} is not compose's with the upstream next door (and the Ingress"
            " controller as the terminator)"
        )
    template = facts["nginx_template"]
    missing = set(re.findall(r"\$\{(\w+)\}", template)) - set(env)
    if missing:
        problems.append(f"nginx: the template's {sorted(missing)} are not set")
    mounts = {m["mountPath"]: m for m in nginx.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    config_maps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in one(docs, "ConfigMap")}
    mount = mounts.get("/etc/nginx/templates/default.conf.template")
    source = volumes.get(mount["name"], {}).get("configMap", {}) if mount else {}
    data = config_maps.get(source.get("name"), {})
    if not mount or data.get(mount.get("subPath")) != template:
        problems.append("nginx: /etc/nginx/templates does not hold the project's template")
    if not {"/tmp", "/etc/nginx/conf.d"} <= set(mounts):
        problems.append("nginx: /tmp or /etc/nginx/conf.d is not writable")
    if env.get("NGINX_STATIC_ROOT"):
        problems += check_static_copy(spec, nginx, env["NGINX_STATIC_ROOT"], facts)
    health = re.findall(r"location\s*=\s*(/\S+)", template)
    for probe in PROBES:
        action = nginx.get(probe, {}).get("httpGet", {})
        if action.get("path") not in health or str(action.get("port")) != env["NGINX_PORT"]:
            problems.append(f"nginx: {probe} does not call nginx's own {health} on its port")
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", template, re.DOTALL)
    idle = re.search(r"keepalive_timeout\s+(\d+)s;", upstream.group(1)) if upstream else None
    keepalive = [d.get("data", {}).get("KEEPALIVE") for d in one(docs, "ConfigMap")]
    closing = idle and not any(k and int(k) > int(idle.group(1)) for k in keepalive)
    if closing and facts["gunicorn"]:
        problems.append(f"app: KEEPALIVE is not above nginx's keepalive_timeout {idle.group(1)}s")
    return problems


def check_static_copy(spec: dict, nginx: dict, root: str, facts: dict) -> list[str]:
    """nginx serves /static/ from a volume an init container fills from the app's own image."""
    (mount,) = [m for m in nginx.get("volumeMounts", []) if m["mountPath"] == root] or [None]
    if mount is None:
        return [f"nginx: nothing is mounted at NGINX_STATIC_ROOT {root}"]
    before = spec["initContainers"][: spec["initContainers"].index(nginx)]
    fillers = [
        c
        for c in before
        if c["image"].rpartition(":")[0].split("/")[-1] == facts["slug"]
        and any(m["name"] == mount["name"] for m in c.get("volumeMounts", []))
    ]
    if len(fillers) != 1 or not any("/static" in word for word in fillers[0].get("command", [])):
        return [f"nginx: no init container copies the app image's static files to {root}"]
    return []


def entry_port(deployment: dict, facts: dict) -> int:
    """Return the port traffic enters a pod on: its nginx sidecar's, else gunicorn's."""
    spec = deployment["spec"]["template"]["spec"]
    nginx = next((c for c in all_containers(spec) if c["name"] == "nginx"), None)
    if nginx is None or not facts["nginx"]:  # a leftover sidecar is check_nginx's to report
        return facts["port"]
    return int({i["name"]: i.get("value") for i in nginx.get("env", [])}["NGINX_PORT"])


def check_traffic(docs: list[dict], facts: dict) -> list[str]:
    """The Service and NetworkPolicy let in only the entry port; egress only to what is used."""
    problems = []
    for service in one(docs, "Service"):
        workloads = selected(docs, service["spec"]["selector"])
        if not workloads:
            problems.append("Service: does not select the web pods")
        for deployment in workloads:
            spec = deployment["spec"]["template"]["spec"]
            entry = entry_port(deployment, facts)
            targets = [resolve_port(spec, p["targetPort"]) for p in service["spec"]["ports"]]
            if targets != [entry]:
                problems.append(f"Service: targets {targets}, not the entry port {entry}")
    policies = one(docs, "NetworkPolicy")
    for deployment in one(docs, "Deployment"):
        mine = [
            p
            for p in policies
            if matches(pod_labels(deployment), p["spec"]["podSelector"]["matchLabels"])
        ]
        if not mine:
            problems.append(
                f"NetworkPolicy: none selects Deployment/{deployment['metadata']['name']}"
            )
        elif deployment in web_workloads(docs):
            if len(mine) != 1:
                problems.append(f"NetworkPolicy: {len(mine)} select the web pods, expected one")
            problems += _check_policy(mine[0], entry_port(deployment, facts), facts)
            problems += _check_scrape(deployment, mine[0])
        else:  # a worker or the scheduler: out only to what is used, whatever selects it
            problems += [problem for policy in mine for problem in _check_egress(policy, facts)]
    return problems


def _check_scrape(deployment: dict, policy: dict) -> list[str]:
    """Check the pods ask to be scraped at /metrics, on a port the policy lets the scraper in."""
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    wanted = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}
    if any(annotations.get(key) != value for key, value in wanted.items()):
        return [f"Deployment: scrape annotations {annotations}, expected {wanted} and a port"]
    port = int(annotations.get("prometheus.io/port", 0))
    app_ports = [p["containerPort"] for p in app_container(deployment).get("ports", [])]
    admitted = [p["port"] for rule in policy["spec"].get("ingress", []) for p in rule["ports"]]
    if port not in app_ports or port not in admitted:
        return [f"NetworkPolicy: keeps the scraper out of port {port} (app ports {app_ports})"]
    return []


def _check_policy(policy: dict, entry: int, facts: dict) -> list[str]:
    """Check that one NetworkPolicy lets in only the entry port and out only what is used."""
    problems = []
    if set(policy["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        problems.append("NetworkPolicy: does not restrict both directions")
    rules = policy["spec"].get("ingress", [])
    # From anywhere, only the entry port; from chosen peers (the metrics scraper) any port. With
    # HTTPS, nginx believes the X-Forwarded-For of whoever reaches it: the entry port only from
    # the Ingress controller's namespace, not from anywhere.
    ingress = [p["port"] for rule in rules if not rule.get("from") for p in rule["ports"]]
    wanted = [] if facts["https"] else [entry]
    if ingress != wanted:
        problems.append(f"NetworkPolicy: lets in {ingress} from anywhere, expected {wanted}")
    from_controller = [
        p["port"] for rule in rules if rule.get("from") == INGRESS_CONTROLLER for p in rule["ports"]
    ]
    if facts["https"] and from_controller != [entry]:
        problems.append(
            f"NetworkPolicy: lets in {from_controller} from the Ingress controller, not {entry}"
        )
    return problems + _check_egress(policy, facts)


def _check_egress(policy: dict, facts: dict) -> list[str]:
    """Check that one NetworkPolicy restricts egress to DNS and the servers the options chose."""
    problems = []
    if "Egress" not in policy["spec"].get("policyTypes", []):
        problems.append("NetworkPolicy: does not restrict egress")
    egress = {
        (p["port"], p.get("protocol", "TCP"))
        for rule in policy["spec"].get("egress", [])
        for p in rule.get("ports", [])
    }
    wanted = {(53, "UDP"), (53, "TCP")}
    wanted |= {(5432, "TCP")} if facts["postgres"] else set()
    wanted |= {(6379, "TCP")} if facts["redis"] else set()
    wanted |= {(4318, "TCP")} if facts["opentelemetry"] else set()  # an OTLP/HTTP collector
    if egress != wanted:
        problems.append(f"NetworkPolicy: lets out {sorted(egress)}, expected {sorted(wanted)}")
    return problems


# The peers of the entry port with HTTPS: the pods of ingress-nginx's namespace, as documented.
INGRESS_CONTROLLER = [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
]


def is_single(deployment: dict) -> bool:
    """Say whether a Deployment runs one pod, never two at once (replaced with Recreate)."""
    spec = deployment["spec"]
    return spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate"


def runs(deployment: dict, subcommand: str) -> bool:
    """Say whether a Deployment's main container runs a command naming ``subcommand``."""
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    return subcommand in main.get("command", []) + main.get("args", [])


def check_availability(docs: list[dict], facts: dict) -> list[str]:
    """An autoscaler scales each Deployment on CPU; a PDB guards its pods; pods spread out.

    A Deployment of one pod at a time (the scheduler) has no autoscaler instead.
    """
    return [problem for d in one(docs, "Deployment") for problem in _check_scaling(docs, d)]


def check_single_scheduler(docs: list[dict], facts: dict) -> list[str]:
    """The scheduler (Celery beat) runs in one pod, never two at once: each would send tasks."""
    return [
        f"Deployment/{d['metadata']['name']}: runs beat without replicas 1 and Recreate"
        for d in one(docs, "Deployment")
        if runs(d, "beat") and not is_single(d)
    ]


def _check_scaling(docs: list[dict], deployment: dict) -> list[str]:
    """Check one Deployment's autoscaler, disruption budget and topology spread."""
    problems = []
    name = deployment["metadata"]["name"]
    hpas = [
        hpa
        for hpa in one(docs, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["name"] == name
    ]
    if is_single(deployment):
        return [f"HorizontalPodAutoscaler: scales the single-pod {name}"] if hpas else []
    if len(hpas) != 1 or hpas[0]["apiVersion"] != "autoscaling/v2":
        problems.append("HorizontalPodAutoscaler: does not scale the Deployment (autoscaling/v2)")
    elif not 1 <= hpas[0]["spec"].get("minReplicas", 1) <= hpas[0]["spec"]["maxReplicas"]:
        problems.append("HorizontalPodAutoscaler: min and max replicas disagree")
    pdbs = [
        pdb
        for pdb in one(docs, "PodDisruptionBudget")
        if matches(pod_labels(deployment), pdb["spec"]["selector"]["matchLabels"])
    ]
    if len(pdbs) != 1:
        problems.append("PodDisruptionBudget: does not select the web pods")
    spread = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
    if {c["topologyKey"] for c in spread} != {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }:
        problems.append("Deployment: does not spread pods over nodes and zones")
    return problems


def check_namespace(docs: list[dict], facts: dict) -> list[str]:
    """Everything lands in the overlay's namespace, which enforces the restricted standard."""
    namespaces = one(docs, "Namespace")
    if len(namespaces) != 1:
        return [f"{len(namespaces)} Namespaces, expected the overlay's"]
    namespace = namespaces[0]["metadata"]
    problems = []
    if namespace.get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        problems.append("Namespace: does not enforce the restricted Pod Security Standard")
    for doc in docs:
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != namespace["name"]:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: outside the namespace")
    return problems


CHECKS = (
    check_pod_security,
    check_app_container,
    check_config_and_secret,
    check_migrations,
    check_audit_prune,
    check_image,
    check_nginx,
    check_traffic,
    check_availability,
    check_single_scheduler,
    check_namespace,
)


def manifest_problems(docs: list[dict], facts: dict) -> list[str]:
    """Return every broken rule of one rendered overlay."""
    return [problem for check in CHECKS for problem in check(docs, facts)]


# ---- tests ----


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_overlays_render_and_pass_strict_schema_validation(manifests, combo, tmp_path):
    """It builds each overlay offline, every document valid for old and new Kubernetes."""
    paths = []
    for overlay, stream in manifests(combo).items():
        kinds = sorted(doc["kind"] for doc in load(stream))
        assert {"Deployment", "Service", "Secret", "ConfigMap"} <= set(kinds), kinds
        paths.append(tmp_path / f"{overlay}.yaml")
        paths[-1].write_text(stream)
    for version in KUBERNETES_VERSIONS:
        result = validate(paths, version)
        assert result.returncode == 0, (version, result.stdout + result.stderr)


@pytest.mark.parametrize("combo", params([c for c in K8S_COMBOS if c.selected("use_https")]))
def test_the_https_ingress_example_routes_to_the_service_with_a_managed_certificate(bake, combo):
    """It is a valid Ingress whose host has a cert-manager certificate and reaches the Service."""
    root = bake(combo)
    path = root / "deploy/k8s/ingress.example.yaml"
    for version in KUBERNETES_VERSIONS:
        result = validate([path], version)
        assert result.returncode == 0, (version, result.stdout + result.stderr)
    (ingress,) = load(path.read_text())
    (service,) = load((root / "deploy/k8s/base/service.yaml").read_text())
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    (tls,) = ingress["spec"]["tls"]
    (rule,) = ingress["spec"]["rules"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"]
    (route,) = rule["http"]["paths"]
    backend = route["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    # Behind the controller and the sidecar, the app counts two proxy hops.
    config = (root / "deploy/k8s/base/config.env").read_text().splitlines()
    assert "TRUSTED_PROXIES=2" in config


# The official PostgreSQL image's postgres user, which the backup pods run as.
POSTGRES_IMAGE_USER = {"uid": 999, "gid": 999}


@pytest.mark.parametrize("combo", params([c for c in K8S_COMBOS if c.selected("use_postgres")]))
def test_the_backup_cronjob_example_is_valid_hardened_and_runs_the_projects_script(bake, combo):
    """It is a valid CronJob as hardened as the other pods, running postgres/backup.sh in
    compose's PostgreSQL image, writing to the claim it defines."""
    root = bake(combo)
    path = root / "deploy/k8s/backup-cronjob.example.yaml"
    for version in KUBERNETES_VERSIONS:
        result = validate([path], version)
        assert result.returncode == 0, (version, result.stdout + result.stderr)
    docs = load(path.read_text())
    assert check_pod_security(docs, POSTGRES_IMAGE_USER) == []
    (claim,) = one(docs, "PersistentVolumeClaim")
    (cronjob,) = one(docs, "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    ((_, pod),) = pod_specs(docs)
    (container,) = pod["containers"]
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    assert container["image"] == compose["services"]["postgres"]["image"]
    assert container["command"] == ["sh", "/opt/backup/backup.sh", "backup"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert volumes[mounts["/opt/backup"]]["configMap"]
    claimed = volumes[mounts["/backups"]]["persistentVolumeClaim"]["claimName"]
    assert claimed == claim["metadata"]["name"]
    env = {item["name"]: item for item in container["env"]}
    assert env["BACKUP_DIR"]["value"] == "/backups"
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    assert (root / "postgres/backup.sh").is_file()
    assert "backup-cronjob.example.yaml" not in (root / "deploy/k8s/deploy.sh").read_text()


def test_the_pod_security_check_reads_a_cronjobs_pods():
    """It finds a CronJob whose pods may run as root with a writable root filesystem."""
    container = {"name": "backup", "image": "postgres", "command": ["sh"]}
    pod = {"containers": [container], "volumes": []}
    cronjob = {
        "kind": "CronJob",
        "metadata": {"name": "backup"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
    }
    problems = check_pod_security([cronjob], POSTGRES_IMAGE_USER)
    assert "CronJob/backup container backup: may run as root" in problems
    assert "CronJob/backup container backup: root filesystem is writable" in problems


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_every_manifest_the_bake_keeps_is_deployed(project, manifests, combo):
    """It renders, in every overlay, each object of each manifest file of the base folder."""
    base = project(combo) / "deploy/k8s/base"
    kept = {
        (doc["kind"], doc["metadata"]["name"])
        for path in base.glob("*.yaml")
        if path.name != "kustomization.yaml"
        for doc in load(path.read_text())
    }
    assert kept
    for overlay, stream in manifests(combo).items():
        rendered = {(doc["kind"], doc["metadata"]["name"]) for doc in load(stream)}
        assert kept <= rendered, (overlay, kept - rendered)


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_rendered_overlays_have_no_serious_misconfiguration(manifests, combo, tmp_path):
    """It passes trivy's Kubernetes checks with no HIGH or CRITICAL finding."""
    for overlay, stream in manifests(combo).items():
        (tmp_path / "rendered").mkdir(exist_ok=True)
        (tmp_path / "rendered" / f"{overlay}.yaml").write_text(stream)
    result = subprocess.run(
        [
            tool("trivy"),
            "config",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--skip-check-update",
            "--quiet",
            "--severity",
            "HIGH,CRITICAL",
            "--exit-code",
            "1",
            str(tmp_path / "rendered"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "dev.yaml" in result.stdout and "prod.yaml" in result.stdout


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_manifests_agree_with_the_app_and_its_image(manifests, facts, combo):
    """It wires probes, ports, user, resources, Job, sidecar and policies to the project."""
    combo_facts = facts(combo)
    assert combo_facts["rules"]["health.healthz"] == "/healthz"
    assert combo_facts["rules"]["health.readyz"] == "/readyz"
    for overlay, stream in manifests(combo).items():
        assert manifest_problems(load(stream), combo_facts) == [], overlay


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_overlays_set_their_own_image_tag_namespace_and_size(manifests, facts, project, combo):
    """It runs the local image on few replicas in dev, the registry's release in prod."""
    slug = facts(combo)["slug"]
    images = {}
    for overlay, stream in manifests(combo).items():
        docs = load(stream)
        apps = {app_container(d)["image"] for d in one(docs, "Deployment") if app_container(d)}
        (images[overlay],) = apps
        (namespace,) = one(docs, "Namespace")
        assert namespace["metadata"]["name"] == (slug if overlay == "prod" else f"{slug}-{overlay}")
    assert images == {"dev": f"{slug}:dev", "prod": f"registry.example.com/{slug}:0.1.0"}
    # The README's build commands produce exactly these images.
    readme = (project(combo) / "deploy/k8s/README.md").read_text()
    assert set(re.findall(r"docker build -t (\S+) \.", readme)) == set(images.values())


DB_BUDGET = re.compile(
    r"holds up to (\d+) \(one worker at\s+`limits\.cpu: \"?(\w+)\"?`, (\d+) threads\), and the"
    r"\s+autoscaler's (\d+) replicas (\d+), under PostgreSQL's default\s+`max_connections` of 100"
)


@pytest.mark.parametrize(
    "combo", params([combo for combo in K8S_COMBOS if combo.selected("use_postgres")])
)
def test_readme_database_connection_budget_matches_the_manifests(manifests, facts, project, combo):
    """It states the web pods' PostgreSQL connections as the prod overlay sizes them."""
    docs = load(manifests(combo)["prod"])
    slug = facts(combo)["slug"]
    (web,) = [d for d in one(docs, "Deployment") if d["metadata"]["name"] == slug]
    cpu = app_container(web)["resources"]["limits"]["cpu"]
    threads = int(settings_of(docs)["WEB_THREADS"])
    (hpa,) = [
        h
        for h in one(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == web["metadata"]["name"]
    ]
    replicas = hpa["spec"]["maxReplicas"]
    readme = (project(combo) / "deploy/k8s/README.md").read_text()
    match = DB_BUDGET.search(readme)
    assert match, "deploy/k8s/README.md states no database connection budget"
    per_pod, stated_cpu, stated_threads, stated_replicas, total = match.groups()
    workers = math.ceil(float(str(cpu).removesuffix("m")) / (1000 if str(cpu).endswith("m") else 1))
    assert (stated_cpu, int(stated_threads)) == (str(cpu), threads)
    assert int(per_pod) == workers * threads
    assert (int(stated_replicas), int(total)) == (replicas, replicas * workers * threads)
    assert int(total) < 100


KUSTOMIZE_COMMAND = re.compile(r"^\s*kubectl kustomize ([^|\n]+?)\s*(?:\||$)", re.MULTILINE)


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_readme_render_commands_work_as_written(project, combo):
    """It documents `kubectl kustomize` commands that build, run from the project root."""
    root = project(combo)
    readme = (root / "deploy/k8s/README.md").read_text()
    commands = set(KUSTOMIZE_COMMAND.findall(readme))
    assert commands, "the README shows no kubectl kustomize command"
    for arguments in commands:
        result = subprocess.run(
            [tool("kubectl"), "kustomize", *arguments.split()],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (arguments, result.stderr)


def selector_matches(labels: dict, selector: str) -> bool:
    """Evaluate a label selector of k=v, k==v, k!=v and !k terms, comma-separated."""
    for term in selector.split(","):
        if term.strip().startswith("!"):
            if term.strip()[1:] in labels:
                return False
        elif "!=" in term:
            key, value = term.split("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        else:
            key, value = re.split(r"==?", term)
            if labels.get(key.strip()) != value.strip():
                return False
    return True


STUB = """#!{python}
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["kustomize"]:
    os.execv({real!r}, [{real!r}, *args])
entry = {{"args": args}}
if "-" in args:
    entry["stdin"] = sys.stdin.read()
with open({log!r}, "a") as log:
    log.write(json.dumps(entry) + "\\n")
"""


def run_deploy(
    root: Path, overlay: str, tmp_path: Path
) -> tuple[subprocess.CompletedProcess, list]:
    """Run deploy.sh against a recording kubectl (kustomize is real); return its calls."""
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    log = tmp_path / "kubectl.log"
    stub = stub_dir / "kubectl"
    stub.write_text(STUB.format(python=sys.executable, real=tool("kubectl"), log=str(log)))
    stub.chmod(0o755)
    result = subprocess.run(
        ["bash", "deploy/k8s/deploy.sh", overlay],
        cwd=root,
        env={"PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


VALUE_FLAGS = {"-f", "-l", "-n", "--namespace", "--selector"}


def option(args: list[str], name: str) -> str | None:
    """Return the value following a flag in an argument list."""
    return args[args.index(name) + 1] if name in args else None


def verb(args: list[str]) -> str:
    """Return a kubectl call's positional words, without flags and their values."""
    words = []
    for index, arg in enumerate(args):
        if not arg.startswith("-") and (index == 0 or args[index - 1] not in VALUE_FLAGS):
            words.append(arg)
    return " ".join(words)


@pytest.mark.parametrize("combo", params(K8S_COMBOS))
def test_deploy_script_migrates_before_rolling_out(project, manifests, facts, combo, tmp_path):
    """It deploys config and Secret, then runs the migration Job, then the web tier."""
    slug = facts(combo)["slug"]
    result, calls = run_deploy(project(combo), "prod", tmp_path)
    assert result.returncode == 0, result.stderr
    rendered = load(manifests(combo)["prod"])
    assert all(option(call["args"], "--namespace") in (None, slug) for call in calls)
    verbs = [verb(call["args"]) for call in calls]
    if combo.selected("use_postgres"):
        assert verbs == [
            f"delete job {slug}-migrate",
            "apply",
            "apply",
            f"wait job/{slug}-migrate",
            "apply",
            f"rollout status deployment/{slug}",
        ]
        applied = [
            doc["kind"]
            for call in calls[1:3]
            for doc in load(call["stdin"])
            if selector_matches(
                doc["metadata"].get("labels", {}), option(call["args"], "--selector")
            )
        ]
        # Everything the Job needs, and the Job, but no workload (web, workers) yet.
        assert {"Namespace", "ConfigMap", "Secret", "Job"} <= set(applied), applied
        assert not {"Deployment", "Service", "HorizontalPodAutoscaler"} & set(applied), applied
        assert applied.index("Job") == len(applied) - 1, "the Job comes after what it needs"
        assert "--for=condition=complete" in calls[3]["args"]
    else:
        assert verbs == ["apply", f"rollout status deployment/{slug}"]
    assert load(calls[-2]["stdin"]) == rendered
    assert option(calls[-2]["args"], "--selector") is None


@pytest.mark.parametrize("combo", params([ALL_ON, K8S_ALONE]))
def test_deploy_script_refuses_to_run_without_the_secret_file(bake, combo, tmp_path):
    """It stops before touching the cluster when overlays/<env>/secret.env is missing."""
    root = copy_project(bake(combo), tmp_path, with_secrets=False)
    result, calls = run_deploy(root, "prod", tmp_path)
    assert result.returncode == 1
    assert "secret.env" in result.stderr and "secret.env.example" in result.stderr
    assert calls == []


@pytest.mark.parametrize("combo", params([ALL_ON, K8S_ALONE]))
def test_secret_files_are_git_ignored_and_the_example_holds_placeholders(bake, combo, tmp_path):
    """It keeps each overlay's secret.env out of git and only placeholders in the example."""
    root = copy_project(bake(combo), tmp_path, with_secrets=True)
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(root)], check=True, timeout=60)

    def ignored(path: str) -> bool:
        check = subprocess.run([*git, "check-ignore", "-q", path], cwd=root, timeout=60)
        return check.returncode == 0

    for overlay in OVERLAYS:
        assert ignored(f"deploy/k8s/overlays/{overlay}/secret.env")
    assert not ignored("deploy/k8s/secret.env.example")
    values = project_files.env_file(root / "deploy/k8s/secret.env.example")
    assert values["SECRET_KEY"] == "change-me"
    assert ("DATABASE_URL" in values) == combo.selected("use_postgres")
    assert ("REDIS_URL" in values) == combo.selected("use_redis")
    # Sentry is optional: its DSN (a key) belongs here, empty (no reports) until one is set.
    assert ("SENTRY_DSN" in values) == combo.selected("use_opentelemetry")
    assert values.pop("SENTRY_DSN", "") == ""
    # Mail is optional too: its URL holds the mail server's password, empty (no mail) until set.
    assert ("MAIL_URL" in values) == combo.selected("use_auth")
    assert values.pop("MAIL_URL", "") == ""
    # So are the keys of a SECRET_KEY rotation: empty until one is under way.
    assert ("SECRET_KEY_FALLBACKS" in values) == combo.selected("use_auth")
    assert values.pop("SECRET_KEY_FALLBACKS", "") == ""
    # And single sign-on's client secret: empty until a provider is named (config.env).
    sso = combo.selected("use_auth") and combo.selected("use_frontend")
    assert ("OIDC_CLIENT_SECRET" in values) == sso
    assert values.pop("OIDC_CLIENT_SECRET", "") == ""
    assert all("change-me" in value for value in values.values())


@pytest.mark.parametrize("combo", params([ALL_ON, K8S_ALONE]))
def test_scripts_and_env_files_pass_their_linters(bake, combo):
    """It generates a deploy.sh that passes shellcheck and env files dotenv-linter accepts."""
    k8s = bake(combo) / "deploy/k8s"
    result = subprocess.run(
        [tool("shellcheck"), "-f", "gcc", str(k8s / "deploy.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(k8s / "deploy.sh", os.X_OK)
    result = subprocess.run(
        [tool("dotenv-linter"), str(k8s / "base/config.env"), str(k8s / "secret.env.example")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", params([BY_ID["defaults"]]))
def test_nothing_of_kubernetes_remains_when_the_option_is_off(bake, combo):
    """It leaves no deploy/ folder at all without use_kubernetes."""
    assert not combo.selected("use_kubernetes")
    assert not (bake(combo) / "deploy").exists()


# ---- the checks can fail: each broken manifest below is caught ----


def app_of(docs: list[dict]) -> dict:
    """Return the app container of the first web Deployment."""
    return app_container(web_workloads(docs)[0])


def pod_of(docs: list[dict]) -> dict:
    """Return the first web Deployment's pod spec."""
    return web_workloads(docs)[0]["spec"]["template"]["spec"]


def nginx_of(docs: list[dict]) -> dict:
    """Return the nginx sidecar of the rendered Deployment."""
    return next(c for c in pod_of(docs)["initContainers"] if c["name"] == "nginx")


def settings_of(docs: list[dict]) -> dict:
    """Return the data of the app's settings ConfigMap."""
    return next(c["data"] for c in one(docs, "ConfigMap") if "APP_ENV" in c["data"])


def env_item(container: dict, name: str) -> dict:
    """Return a container's env entry by name."""
    return next(item for item in container["env"] if item["name"] == name)


def drop_job(docs: list[dict]) -> None:
    """Remove the migration Job."""
    docs.remove(one(docs, "Job")[0])


def audit_prune_of(docs: list[dict]) -> dict:
    """Return the CronJob pruning the audit trail."""
    (cronjob,) = one(docs, "CronJob")
    return cronjob


def scheduler_of(docs: list[dict]) -> dict:
    """Return the Deployment running Celery beat."""
    (scheduler,) = [d for d in one(docs, "Deployment") if runs(d, "beat")]
    return scheduler


def open_egress(deployment: dict) -> dict:
    """Return a NetworkPolicy letting a Deployment's pods out to anywhere."""
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "open"},
        "spec": {
            "podSelector": {"matchLabels": pod_labels(deployment)},
            "policyTypes": ["Egress"],
            "egress": [{}],
        },
    }


def autoscale_scheduler(docs: list[dict]) -> None:
    """Add an autoscaler of the scheduler, copied from another one."""
    hpa = copy.deepcopy(one(docs, "HorizontalPodAutoscaler")[0])
    hpa["spec"]["scaleTargetRef"]["name"] = scheduler_of(docs)["metadata"]["name"]
    docs.append(hpa)


BREAKAGES = {
    "container without limits": (
        lambda docs: app_of(docs)["resources"].pop("limits"),
        "no cpu in resources.limits",
    ),
    "liveness probe on a wrong path": (
        lambda docs: app_of(docs)["livenessProbe"]["httpGet"].update(path="/health"),
        "livenessProbe calls /health",
    ),
    "liveness probe on readiness": (
        lambda docs: app_of(docs)["livenessProbe"]["httpGet"].update(path="/readyz"),
        "livenessProbe calls /readyz",
    ),
    "readiness probe on a wrong port": (
        lambda docs: app_of(docs)["readinessProbe"]["httpGet"].update(port=8080),
        "readinessProbe port 8080",
    ),
    "sidecar running as root": (
        lambda docs: nginx_of(docs)["securityContext"].update(runAsUser=0),
        "container nginx: may run as root",
    ),
    "privileged container": (
        lambda docs: app_of(docs)["securityContext"].update(privileged=True),
        "container app: is privileged",
    ),
    "pod user not the image's": (
        lambda docs: pod_of(docs)["securityContext"].update(runAsUser=1000),
        "securityContext.runAsUser is 1000",
    ),
    "writable root filesystem": (
        lambda docs: app_of(docs)["securityContext"].pop("readOnlyRootFilesystem"),
        "root filesystem is writable",
    ),
    "grace period shorter than the drain": (
        lambda docs: pod_of(docs).update(terminationGracePeriodSeconds=25),
        "terminationGracePeriodSeconds 25",
    ),
    "no migration Job with Postgres": (drop_job, "expected the migration Job"),
    "gunicorn closing idle connections first": (
        lambda docs: settings_of(docs).pop("KEEPALIVE"),
        "KEEPALIVE is not above",
    ),
    "no audit prune CronJob with users on PostgreSQL": (
        lambda docs: docs.remove(audit_prune_of(docs)),
        "0 CronJobs with users on PostgreSQL",
    ),
    "audit prunes that may overlap": (
        lambda docs: audit_prune_of(docs)["spec"].update(concurrencyPolicy="Allow"),
        "concurrencyPolicy is not Forbid",
    ),
    "audit prune running another command": (
        lambda docs: audit_prune_of(docs)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
            "containers"
        ][0].update(command=["flask", "audit", "export"]),
        "CronJob: runs ['flask', 'audit', 'export']",
    ),
    "migrations in the app container": (
        lambda docs: app_of(docs).update(command=["flask", "db", "upgrade"]),
        "overrides the image's CMD",
    ),
    "Service bypassing nginx": (
        lambda docs: one(docs, "Service")[0]["spec"]["ports"][0].update(targetPort=8000),
        "Service: targets [8000]",
    ),
    "sidecar upstream not next door": (
        lambda docs: env_item(nginx_of(docs), "NGINX_UPSTREAM_HOST").update(value="web"),
        "upstream next door",
    ),
    "gunicorn port open to the network": (
        lambda docs: one(docs, "NetworkPolicy")[0]["spec"]["ingress"].append(
            {"ports": [{"protocol": "TCP", "port": 8000}]}
        ),
        "lets in [8000] from anywhere",
    ),
    "entry port open to every pod, behind HTTPS": (
        lambda docs: one(docs, "NetworkPolicy")[0]["spec"]["ingress"][0].pop("from"),
        "lets in [8080] from anywhere",
    ),
    "scrape port shut by the NetworkPolicy": (
        lambda docs: one(docs, "Deployment")[0]["spec"]["template"]["metadata"][
            "annotations"
        ].update({"prometheus.io/port": "9100"}),
        "keeps the scraper out of port 9100",
    ),
    "two schedulers": (
        lambda docs: scheduler_of(docs)["spec"].update(replicas=2),
        "runs beat without replicas 1 and Recreate",
    ),
    "scheduler rolled out beside the old one": (
        lambda docs: scheduler_of(docs)["spec"].update(strategy={"type": "RollingUpdate"}),
        "runs beat without replicas 1 and Recreate",
    ),
    "scheduler autoscaled": (autoscale_scheduler, "HorizontalPodAutoscaler: scales the single-pod"),
    "scheduler pod running as root": (
        lambda docs: scheduler_of(docs)["spec"]["template"]["spec"]["securityContext"].update(
            runAsUser=0
        ),
        "-scheduler: pod securityContext.runAsUser is 0",
    ),
    "scheduler let out anywhere": (
        lambda docs: docs.append(open_egress(scheduler_of(docs))),
        "NetworkPolicy: lets out []",
    ),
    "egress to a port nothing uses": (
        lambda docs: one(docs, "NetworkPolicy")[0]["spec"]["egress"].append(
            {"ports": [{"protocol": "TCP", "port": 3306}]}
        ),
        "lets out",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
@pytest.mark.parametrize("combo", params([ALL_ON]))
def test_checker_catches_broken_manifests(manifests, facts, combo, breakage):
    """It reports each broken rule of a manifest, with a message naming the fault."""
    docs = load(manifests(combo)["prod"])
    assert manifest_problems(docs, facts(combo)) == []
    broken = copy.deepcopy(docs)
    mutate, message = BREAKAGES[breakage]
    mutate(broken)
    problems = manifest_problems(broken, facts(combo))
    assert any(message in problem for problem in problems), problems


@pytest.mark.parametrize("combo", params([K8S_ALONE]))
def test_checker_catches_leftovers_of_unselected_options(manifests, facts, combo):
    """It reports a Job, a CronJob, an nginx sidecar or a database egress rule the options did not
    ask for."""
    docs = load(manifests(combo)["prod"])
    broken = copy.deepcopy(docs)
    job = copy.deepcopy(web_workloads(docs)[0])
    job.update(kind="Job", apiVersion="batch/v1")
    cronjob = {
        "kind": "CronJob",
        "apiVersion": "batch/v1",
        "metadata": {**job["metadata"], "name": "prune"},
        "spec": {"jobTemplate": {"spec": copy.deepcopy(job["spec"])}},
    }
    broken += [job, cronjob]
    pod_of(broken)["initContainers"] = [{**app_of(broken), "name": "nginx", "image": "nginx:1"}]
    one(broken, "NetworkPolicy")[0]["spec"]["egress"].append({"ports": [{"port": 5432}]})
    problems = manifest_problems(broken, facts(combo))
    for message in (
        "a Job exists without Postgres",
        "a CronJob exists without users on PostgreSQL",
        "nginx container exists",
        "(5432, 'TCP')",
    ):
        assert any(message in problem for problem in problems), (message, problems)


WORKER = {"app.kubernetes.io/component": "extra-worker"}


def with_worker(docs: list[dict], companions: bool) -> list[dict]:
    """Return the manifests plus another Deployment (a worker, as a new option would add one).

    The worker runs the app's image without a Service; with ``companions`` it also gets its own
    autoscaler and disruption budget, as every Deployment must.
    """
    docs = copy.deepcopy(docs)
    web = web_workloads(docs)[0]
    worker = copy.deepcopy(web)
    name = f"{web['metadata']['name']}-extra-worker"
    worker["metadata"]["name"] = name
    worker["spec"]["selector"]["matchLabels"].update(WORKER)
    worker["spec"]["template"]["metadata"]["labels"].update(WORKER)
    worker["spec"]["template"]["spec"].pop("initContainers", None)
    docs.append(worker)
    if companions:
        (hpa,) = [
            copy.deepcopy(h)
            for h in one(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["name"] == web["metadata"]["name"]
        ]
        hpa["metadata"]["name"] = name
        hpa["spec"]["scaleTargetRef"]["name"] = name
        (pdb,) = [
            copy.deepcopy(p)
            for p in one(docs, "PodDisruptionBudget")
            if matches(pod_labels(web), p["spec"]["selector"]["matchLabels"])
        ]
        pdb["metadata"]["name"] = name
        pdb["spec"]["selector"]["matchLabels"].update(WORKER)
        docs += [hpa, pdb]
    return docs


@pytest.mark.parametrize("combo", params([ALL_ON, K8S_ALONE]))
def test_checker_reads_any_number_of_deployments(manifests, facts, combo):
    """It checks every Deployment the manifests hold: a second one passes only when complete."""
    docs = load(manifests(combo)["prod"])
    assert manifest_problems(with_worker(docs, companions=True), facts(combo)) == []
    problems = manifest_problems(with_worker(docs, companions=False), facts(combo))
    for message in ("HorizontalPodAutoscaler: does not scale", "PodDisruptionBudget: does not"):
        assert any(message in problem for problem in problems), (message, problems)


@pytest.mark.parametrize("combo", params([K8S_ALONE]))
def test_schema_validation_catches_a_misspelt_field(manifests, combo, tmp_path):
    """It fails schema validation on a field Kubernetes does not know (--strict)."""
    stream = manifests(combo)["prod"]
    assert "timeoutSeconds:" in stream
    path = tmp_path / "broken.yaml"
    path.write_text(stream.replace("timeoutSeconds:", "timeoutSecond:", 1))
    result = validate([path], KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0
    assert "timeoutSecond" in result.stdout + result.stderr
