"""Tier 2, use_auth: a burst of sign-ins leaves each worker's memory bounded once it is idle.

argon2 takes 19 MiB per hash (accounts.py's memory_cost). glibc's malloc gives each thread that
allocates it an arena of its own and keeps the freed 19 MiB there for the next allocation, so a
worker whose every thread once hashed keeps 19 MiB per thread for good. The app hashes on a pool
of its own few threads instead: whatever the burst, the memory it keeps is that pool's.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .servers import resident_mib, wait_until
from .test_auth import GENEROUS_SIGN_IN, sign_in
from .test_served import each

# It measures an instance of its own, with its own limits: the combination's shared deployment
# serves it (conftest.py).
SHARE_DEPLOYMENT = True
WORKERS = 2  # app-server processes; each has the default 8 threads
BURST = 20  # sign-ins sent at once, more than the 16 threads of both workers together
# What a worker may keep after the burst over its RSS before it: the hashing pool's 2 threads
# times argon2's 19 MiB, plus 12 MiB for what 8 threads serving 20 requests allocate besides
# (a worker kept 41-42 MiB here). Without the pool each thread that ran a hash keeps its
# 19 MiB: the busier worker kept 98-155 MiB here, with gunicorn and with granian; with
# MALLOC_ARENA_MAX=2 instead of the pool, 98-117 MiB.
HASHING_THREADS = 2
HASH_MIB = 19
KEPT_MIB = HASHING_THREADS * HASH_MIB + 12
IDLE_SECONDS = 2.0  # after the last answer, before reading the memory
SETTLE_SECONDS, SETTLED_MIB = 0.5, 0.5  # a started worker is idle once it grows less in that time


def settled(workers: list[int]) -> dict[int, float] | None:
    """Return each worker's resident MiB once it stopped growing (a worker still importing the
    app on a loaded machine would count its imports as kept); None while one still grows."""
    first = {pid: resident_mib(pid) for pid in workers}
    time.sleep(SETTLE_SECONDS)
    then = {pid: resident_mib(pid) for pid in workers}
    return then if all(abs(then[pid] - first[pid]) < SETTLED_MIB for pid in workers) else None


@each("use_auth")
def test_a_burst_of_sign_ins_leaves_each_worker_within_its_hashing_memory(deployment):
    """After 20 sign-ins at once, each worker, idle, holds at most KEPT_MIB more than before.

    Every sign-in names an unknown email, so each verifies the dummy hash (one argon2 hash, as
    a wrong password costs) and answers 401 without writing; the limits are far above 20.
    """
    generous = {
        "RATELIMIT_SIGN_IN": GENEROUS_SIGN_IN,
        "RATELIMIT_SIGN_IN_ACCOUNT": GENEROUS_SIGN_IN,
    }
    service = deployment.extra_service("memory", WEB_CONCURRENCY=str(WORKERS), **generous)

    def started() -> list[int] | None:
        pids = service.workers()
        return pids if len(pids) == WORKERS else None

    workers = wait_until(started, 30, f"{WORKERS} workers started")
    before = wait_until(lambda: settled(workers), 30, "the workers' memory settled after start")

    def attempt(_: int) -> int:
        unknown = f"nobody-{uuid.uuid4().hex}@example.com"
        return sign_in(service.url, unknown, "wrong password").status_code

    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(attempt, range(BURST)))
    assert answers == [401] * BURST, answers
    time.sleep(IDLE_SECONDS)
    assert service.workers() == workers, "a worker was replaced during the burst"
    kept = {pid: round(resident_mib(pid) - before[pid], 1) for pid in workers}
    report = {pid: (round(before[pid], 1), kept[pid]) for pid in workers}
    print(f"MiB before and kept, per worker: {report}")  # the figures: pytest -rP shows them
    assert max(kept.values()) <= KEPT_MIB, f"MiB before and kept, per worker: {report}"
