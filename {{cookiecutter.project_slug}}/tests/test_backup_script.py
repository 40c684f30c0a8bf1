"""postgres/backup.sh writes backups its owner alone can read, as .env is.

The PostgreSQL client tools are stand-ins: small scripts on PATH that write a few bytes where
pg_dump is told to, accept every file as pg_restore, and answer psql's two questions.
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "postgres" / "backup.sh"
STAND_INS = {
    # Writes the dump, then records the mode it was created with (the .dump.partial file's).
    "pg_dump": """
for arg; do case $arg in --file=*) target=${arg#--file=} ;; esac; done
printf 'PGDMP stand-in' >"$target"
ls -ln "$target" >>"$DUMP_MODES"
""",
    "pg_restore": "exit 0",
    "psql": 'case "$*" in *current_database*) echo app ;; *) echo 0001 ;; esac',
}
# The usual umask of a login shell: a file made without care is then group and other readable.
WIDE_UMASK = 0o022


@pytest.fixture
def stand_ins(tmp_path: Path) -> Path:
    """Return a folder holding stand-ins for pg_dump, pg_restore and psql."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in STAND_INS.items():
        program = folder / name
        program.write_text(f"#!/bin/sh\n{body.strip()}\n")
        program.chmod(0o755)
    return folder


def run_script(stand_ins: Path, backups: Path, command: str) -> subprocess.CompletedProcess:
    """Run backup.sh ``command`` into ``backups`` with the stand-ins and a umask of 022."""
    env = {
        "PATH": f"{stand_ins}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": "postgresql://app@127.0.0.1:5432/app",
        "BACKUP_DIR": str(backups),
        "DUMP_MODES": str(stand_ins.parent / "dump-modes.txt"),
    }
    result = subprocess.run(  # noqa: S603  (a fixed script)
        ["/bin/sh", str(SCRIPT), command],
        env=env,
        umask=WIDE_UMASK,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "folder made 0755"])
def test_a_backup_is_readable_by_its_owner_only(tmp_path, stand_ins, existing):
    """The backup is 0600 in a 0700 folder (one made wider before is narrowed), the file
    being written too, and `make backups` lists it."""
    backups = tmp_path / "backups"
    if existing:
        backups.mkdir(mode=0o755)
        backups.chmod(0o755)
    run_script(stand_ins, backups, "backup")
    (backup,) = backups.iterdir()
    assert backup.name.startswith("app_") and backup.name.endswith("_0001.dump"), backup.name
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    (partial,) = (tmp_path / "dump-modes.txt").read_text().splitlines()
    assert partial.startswith("-rw------- ") and partial.endswith(".dump.partial"), partial
    assert str(backup) in run_script(stand_ins, backups, "list").stdout
