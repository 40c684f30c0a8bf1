"""The frontend's part of the benchmark: a digested asset through nginx vs the app server, pages.

The all-on bake's assets are built as `make assets` builds them (tests/frontend_build.py).
nginx serves /static/ from them as its image does from its copy (NGINX_STATIC_ROOT); gunicorn
serves the same file through Flask's static route. Both are asked for gzip, as browsers do:
nginx sends the .gz the digest wrote, Flask the plain file. The page (GET /, the item list from
PostgreSQL, a CSRF token in the form) is loaded straight from gunicorn and through nginx.
"""

import os
import statistics
from pathlib import Path

from tier2 import frontend

GZIP = ("Accept-Encoding: gzip",)


def load_average() -> float:
    """Return the machine's 1-minute load average (other work included)."""
    return os.getloadavg()[0]


def digested_asset(project: Path) -> tuple[Path, str]:
    """Build the bake's assets once; return the static folder and the digested app.js name."""
    static = frontend.build_assets(project)
    return static, frontend.digested_files(static)["app.js"]


def section(results: dict | None, commands: list[str] | None = None) -> list[str]:
    """Return the lines of the frontend section (none when not measured), commands if given."""
    if not results:
        return []
    shown = ["", "Commands:", "", "```bash", *commands, "```"] if commands else []
    by_name = {target.name: target for target in results["targets"]}

    def ratio(a: str, b: str) -> float:
        """Return the median of the per-round req/s ratios of two targets."""
        pairs = zip(by_name[a].samples, by_name[b].samples, strict=True)
        return statistics.median(x.rps / y.rps for x, y in pairs if y.rps)

    static_ratio = ratio("asset through nginx", "asset from gunicorn")
    page_ratio = ratio("page through nginx", "page from gunicorn")
    rows = [
        f"| {t.name} | {t.median('rps'):,.0f} | {t.median('p50_ms'):.2f} ms | "
        f"{t.median('p99_ms'):.2f} ms | {t.errors()} |"
        for t in results["targets"]
    ]
    loads = ", ".join(f"{load:.1f}" for load in results["loads"])
    return [
        "",
        "## Frontend (use_frontend)",
        "",
        f"The all-on bake's pages and assets, built as `make assets` does. The asset is the "
        f"digested `{results['asset']}` ({results['plain_bytes']:,} bytes, "
        f"{results['gzip_bytes']:,} gzipped), asked for with `Accept-Encoding: gzip`: nginx "
        "sends the digest's `.gz` itself (`gzip_static`), gunicorn (Flask's static route) sends "
        "the plain file. The page is `GET /`: the item list from PostgreSQL and a form with a "
        "CSRF token (a session cookie set per request). Medians of the rounds ("
        f"{results['rounds']}), loaded in turn.",
        "",
        "| target | req/s | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Static asset through nginx: **{static_ratio:.1f}x** gunicorn's req/s, and none of "
        "those requests reach the app. Page through nginx: "
        f"{page_ratio:.2f}x direct (ratios: medians of the per-round ratios). The "
        f"machine's 1-minute load average (other work included) was {loads} before and after "
        "the loads.",
        *shown,
    ]
