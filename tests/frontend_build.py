"""Build a generated project's frontend assets offline, as `make assets` does, once per session.

npm installs from the cache .ci/run fills (NPM_CACHE, like .uvcache for uv): the tests never
reach the npm registry.
"""

import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
NPM_CACHE = TEMPLATE / ".npmcache"
FILL_HINT = (
    "fill it as .ci/run does: copy {{cookiecutter.project_slug}}/assets/package*.json to a "
    "folder, then `npm ci --ignore-scripts --cache <template>/.npmcache --prefix <folder>`"
)


def run(command: list[str], root: Path, env: dict) -> str:
    """Run a build step in the project; fail with its output when it fails."""
    result = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}{result.stderr}"
    return result.stdout


def build_assets(root: Path, package: str, env: dict) -> None:
    """Install the locked npm packages offline, bundle with esbuild, then digest the bundles."""
    assert shutil.which("npm", path=env.get("PATH")), "npm is missing (apt-get install nodejs npm)"
    assert NPM_CACHE.is_dir(), f"{NPM_CACHE} is missing: {FILL_HINT}"
    npm_ci = ["npm", "ci", "--offline", "--no-audit", "--no-fund", "--cache", str(NPM_CACHE)]
    run([*npm_ci, "--prefix", "assets"], root, env)
    run(["npm", "run", "build", "--prefix", "assets"], root, env)
    digest_app = f"{package}.web.static_files:digest_app()"
    run([sys.executable, "-m", "flask", "--app", digest_app, "digest", "compile"], root, env)
