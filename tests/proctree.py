"""Process trees read from /proc, and killing a run like a crash of its controller (standard library only).

Shared by the tools that SIGKILL an `ansible-playbook` run: tests/faults/lib.py, the fault suite's callback
plugin (tests/faults/callback_plugins/praxis_fault_kill.py, which runs inside ansible-playbook and loads this
file by its path) and tests/molecule/run_step.py (a script run by Molecule).
"""
from __future__ import annotations

import os
import signal
from typing import Callable


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` ([] when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def is_server_argv(argv: list[str]) -> bool:
    """A prAxIs OS server (`python -m mcp_server --transport ...`)."""
    return "mcp_server" in argv and "--transport" in argv


def is_server(pid: int) -> bool:
    """`pid` is a prAxIs OS server: a crashed controller leaves a detached one (and what it runs) running."""
    return is_server_argv(cmdline(pid))


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(root: int, spare: Callable[[int], bool] | None = None) -> list[int]:
    """Every live process below `root` (by parent pid); a process `spare` keeps is left out with its subtree."""
    tree = _children()
    found, todo = [], [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            if spare is None or not spare(child):
                found.append(child)
                todo.append(child)
    return found


def kill_run(root: int, spare: Callable[[int], bool] | None = None) -> None:
    """SIGKILL `root`'s process group and every descendant but what `spare` keeps (with its subtree).

    ansible-core's workers call setsid(), so the group alone leaves them behind, blocked writing a
    result nobody reads. The tree is read before anything dies. The group dies first, so the controller
    starts no new worker, unless `root` is this very process (the fault suite's callback plugin): then
    the descendants die first and the group last.
    """
    victims = descendants(root, spare)
    try:
        group = os.getpgid(root)
    except OSError:  # already reaped: a session leader's group keeps its pid
        group = root
    if root != os.getpid():
        _kill(os.killpg, group)
    for pid in victims:
        _kill(os.kill, pid)
    _kill(os.killpg, group)


def _kill(call: Callable[[int, int], None], target: int) -> None:
    try:
        call(target, signal.SIGKILL)
    except OSError:
        pass
