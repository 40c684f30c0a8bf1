"""Keep each app-server worker on one CPU when the workers cover every CPU this process may use.

A worker's threads pass Python's lock (the GIL) to one another around every blocking call: a
round trip to the database or the cache, a write to a socket. When the threads of one worker run
on different CPUs, each pass wakes a thread on another CPU, and under load that costs the worker
more CPU than the call itself, most of all in a virtual machine, where waking another CPU exits
to the hypervisor. On one CPU a pass is a plain switch: cached reads are served faster this way,
and nothing slower.

WORKER_CPU_AFFINITY=auto (the default) pins only when there are at least as many workers as CPUs
in this process's affinity, and more than one CPU: every CPU then gets its share of workers, as
the kernel would spread them. With fewer workers than CPUs (a cgroup quota below the CPUs the
container sees: a CPU limit on a larger host) nothing is pinned, since the workers of every such
container would crowd the same first CPUs. ``off`` never pins; choose it when your threads compute
outside the GIL (NumPy and the like), as one worker may then use several CPUs at once.

Each new worker takes the CPU the fewest live workers keep to, so a worker that replaces one
that died or was recycled takes the CPU it freed.
"""

import collections
import logging
import os
from collections.abc import Iterable
from typing import Literal

log = logging.getLogger(__name__)

Affinity = Literal["auto", "off"]


def cpus_to_pin(affinity: Affinity, workers: int) -> tuple[int, ...]:
    """Return the CPUs the workers are spread over, or () when they are not pinned."""
    if affinity == "off":
        return ()
    try:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux: no affinity to set either
        return ()
    if len(cpus) < 2 or workers < len(cpus):
        return ()
    return cpus


def least_used(cpus: tuple[int, ...], taken: Iterable[int | None]) -> int:
    """Return the CPU of ``cpus`` that the fewest of ``taken`` keep to (the lowest on a tie)."""
    counts = collections.Counter(cpu for cpu in taken if cpu in cpus)
    return min(cpus, key=lambda cpu: (counts[cpu], cpu))


def pin(pid: int, cpu: int) -> None:
    """Keep every thread of process ``pid`` on ``cpu``; the threads it starts later inherit it.

    A failure (the CPU went offline meanwhile) is logged and the process runs unpinned: it is
    only slower.
    """
    try:
        tasks = [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tasks = [pid]
    for task in tasks:
        try:
            os.sched_setaffinity(task, {cpu})
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except OSError as exc:
            log.warning("worker %s runs on any CPU: cannot keep it on CPU %s: %s", pid, cpu, exc)
            return


def pinned_cpu(pid: int) -> int | None:
    """Return the one CPU process ``pid`` keeps to, or None (not pinned, or gone)."""
    try:
        cpus = os.sched_getaffinity(pid)
    except OSError:
        return None
    return next(iter(cpus)) if len(cpus) == 1 else None


def children(pid: int) -> set[int]:
    """Return the pids of the live children of process ``pid`` (any of its threads forked them)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found.update(int(child) for child in listed.read().split())
        except OSError:
            continue
    return found


def pin_forked_children(cpus: tuple[int, ...]) -> None:
    """Pin each process this one forks from now on to the least used of ``cpus``.

    For a server whose workers are forked by code outside the app (granian): the choice is made
    in this process before each fork, from the CPUs its live children keep to, and applied on
    both sides of the fork, so the child is pinned before it starts a thread and the next choice
    already sees it. A child's own forks are left alone. A kernel that does not list a process's
    children (/proc/<pid>/task/<tid>/children) leaves nothing to choose from: nothing is pinned.
    """
    if not cpus:
        return
    parent = os.getpid()
    if not os.path.exists(f"/proc/{parent}/task/{parent}/children"):
        log.info("workers run on any CPU: this kernel does not list a process's children")
        return
    state: dict = {}

    def before() -> None:
        if os.getpid() == parent:
            state["children"] = children(parent)
            state["cpu"] = least_used(cpus, map(pinned_cpu, state["children"]))

    def in_child() -> None:
        if os.getppid() == parent and "cpu" in state:
            pin(os.getpid(), state["cpu"])

    def in_parent() -> None:
        if os.getpid() == parent and "cpu" in state:
            for child in children(parent) - state["children"]:
                pin(child, state["cpu"])

    os.register_at_fork(before=before, after_in_child=in_child, after_in_parent=in_parent)
