"""Who holds a lease or runs a job: ``"ROLE on HOST pid PID"``, so a lease left by a process
that died on this machine can be taken over at once instead of after it expires."""

from __future__ import annotations

import os
import re
import secrets
import socket

_OWNER = re.compile(r" on (?P<host>\S+) pid (?P<pid>\d+)(?: |$)")


def owner_id(role: str) -> str:
    """A name for this process acting as ``role`` (a tab, a server, describe-all), unique
    among processes and among calls (a random suffix tells two tabs of one server apart)."""
    return f"{role} on {socket.gethostname()} pid {os.getpid()} #{secrets.token_hex(3)}"


def owner_gone(owner: str) -> bool:
    """Whether ``owner`` names a process of this machine that no longer runs."""
    found = _OWNER.search(owner)
    if found is None or found["host"] != socket.gethostname():
        return False
    pid = int(found["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False
