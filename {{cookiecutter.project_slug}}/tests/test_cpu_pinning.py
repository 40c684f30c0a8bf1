"""Workers keep to one CPU each when they cover every CPU, and only then (cpu_pinning.py)."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from {{ cookiecutter.package_name }}.cpu_pinning import (
    cpus_to_pin,
    least_used,
    pin,
    pin_forked_children,
    pinned_cpu,
)

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cpus = pytest.mark.skipif(
    len(CPUS) < 2, reason="pinning workers apart needs at least 2 CPUs; this process may use fewer"
)


@pytest.mark.parametrize(
    ("affinity", "cpus", "workers", "pinned"),
    [
        ("auto", {0, 1}, 2, (0, 1)),
        ("auto", {2, 3}, 5, (2, 3)),  # more workers than CPUs: each CPU gets its share
        ("auto", set(range(8)), 2, ()),  # a quota below the CPUs seen: they would crowd
        ("auto", {0}, 1, ()),  # one CPU: nothing to choose
        ("off", {0, 1}, 2, ()),
    ],
)
def test_workers_are_pinned_only_when_they_cover_every_cpu(
    monkeypatch, affinity, cpus, workers, pinned
):
    """It spreads the workers over the process's CPUs when there is a worker for each."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: cpus)
    assert cpus_to_pin(affinity, workers) == pinned


def test_a_new_worker_takes_the_cpu_the_fewest_workers_keep_to():
    """It picks the least used CPU, the lowest on a tie, ignoring CPUs it does not spread over."""
    assert least_used((0, 1), []) == 0
    assert least_used((0, 1), [0]) == 1
    assert least_used((0, 1), [0, 1, None, 1]) == 0
    assert least_used((2, 3), [0, 0, 3]) == 2


def test_pin_keeps_every_thread_of_a_process_on_the_cpu():
    """It pins the threads a process has already started, not only its first one."""
    script = "import threading, time\n" + "\n".join(
        ["for _ in range(3):", "    threading.Thread(target=time.sleep, args=(60,)).start()"]
    )
    child = subprocess.Popen([sys.executable, "-c", script])  # noqa: S603  (this Python)
    try:
        for _ in range(100):  # bounded: 10 s for its threads to start
            if len(os.listdir(f"/proc/{child.pid}/task")) == 4:
                break
            time.sleep(0.1)
        cpu = CPUS[-1]
        pin(child.pid, cpu)
        tasks = [int(task) for task in os.listdir(f"/proc/{child.pid}/task")]
        assert len(tasks) == 4
        assert [pinned_cpu(task) for task in tasks] == [cpu] * 4
    finally:
        child.kill()
        child.wait()


@needs_two_cpus
def test_forked_children_are_spread_and_a_replacement_takes_the_freed_cpu(run_python):
    """Each child a launcher forks (as granian forks its workers) gets the least used CPU, at
    once; a child forked after one died takes the CPU that one kept to."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        from {{ cookiecutter.package_name }}.cpu_pinning import pin_forked_children, pinned_cpu

        cpus = tuple(sorted(os.sched_getaffinity(0)))[:2]
        pin_forked_children(cpus)

        def fork():
            pid = os.fork()
            if pid == 0:
                signal.pause()  # the parent ends it
                os._exit(0)
            return pid

        children = [fork() for _ in range(4)]
        print(*[pinned_cpu(child) for child in children])
        os.kill(children[2], signal.SIGKILL)
        os.waitpid(children[2], 0)
        replacement = fork()
        print(pinned_cpu(replacement))
        for child in children[:2] + children[3:] + [replacement]:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        """
    )
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    first, second = CPUS[:2]
    spread, replaced = result.stdout.splitlines()
    assert spread.split() == [str(first), str(second), str(first), str(second)]
    assert replaced == str(first)


def test_no_child_is_pinned_where_the_kernel_does_not_list_children(monkeypatch):
    """It sets up no fork hook when /proc does not list a process's children: it could not see
    which CPUs the live workers keep to, and would pin every worker to the first CPU."""
    hooks = []
    monkeypatch.setattr("os.register_at_fork", lambda **hook: hooks.append(hook))
    monkeypatch.setattr("os.path.exists", lambda path: not path.endswith("/children"))
    pin_forked_children((0, 1))
    assert hooks == []
    monkeypatch.setattr("os.path.exists", lambda path: True)
    pin_forked_children((0, 1))
    assert len(hooks) == 1 and set(hooks[0]) == {"before", "after_in_child", "after_in_parent"}
