"""What a process sends off the machine, seen by ``strace``.

:func:`strace_command` prefixes a command so that every call that makes or
addresses a socket is logged, in every thread and child; :func:`socket_calls`
sorts the log into calls that stay on the machine (``AF_UNIX``: PulseAudio, the
asyncio loop's own socket pair; ``AF_NETLINK``: the kernel) and calls that could
leave it: any other socket made, any other address connected or sent to. Loopback
counts as leaving: voiceterm's default setup talks to no local server either; with
an LLM server configured, :meth:`SocketCalls.besides` leaves out the calls to it.

:func:`app_environment` strips the settings that turn telemetry off from the
environment given to the app, so that a test sees what the app does on its own.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from voiceterm.engines.offline import OFFLINE_ENVIRONMENT

TRACED_CALLS = "socket,socketpair,connect,sendto,sendmsg"
LOCAL_FAMILIES = frozenset({"AF_UNIX", "AF_LOCAL", "AF_NETLINK"})

# Each of these makes onnxruntime (and others) keep quiet on its own: a CI job
# must not hide what the app would send on a user's machine.
_CI_MARKERS = (
    "CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
    "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER",
)  # fmt: skip
# "1234 connect(5, {sa_family=AF_INET, ...": the thread's id, the call, its arguments.
_CALL = re.compile(r"^(?:\d+\s+)?(socket|socketpair|connect|sendto|sendmsg)\((.*)")
_FIRST_ARGUMENT = re.compile(r"\w+")
_ADDRESS = re.compile(r"sa_family=(\w+)")


def strace_command(log: Path) -> list[str]:
    """``strace`` that follows every thread and child and logs socket calls to ``log``."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed (scripts/setup.sh --dev installs it)")
    # --seccomp-bpf: only the traced calls stop the process, so audio keeps its pace.
    return [strace, "-f", "--seccomp-bpf", "-qq", "-o", str(log), "-e", f"trace={TRACED_CALLS}"]


def app_environment(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` and ``extra`` without the telemetry opt-outs the app must set itself."""
    removed = {*OFFLINE_ENVIRONMENT, *_CI_MARKERS}
    return {name: value for name, value in {**base, **extra}.items() if name not in removed}


@dataclass(frozen=True, slots=True)
class SocketCalls:
    """The socket calls of one traced run, as strace printed them."""

    local: list[str]
    """Calls on sockets that stay on the machine."""
    leaving: list[str]
    """Calls that make or address any other socket: they could leave the machine."""

    def besides(self, host: str, port: int) -> list[str]:
        """The calls that could leave the machine, except those to ``host:port``.

        For an app configured to talk to a server there: making an internet socket
        sends nothing; only the addresses it connects or sends to tell where to.
        """
        server = f'sin_port=htons({port}), sin_addr=inet_addr("{host}")'
        return [
            line
            for line in self.leaving
            if not (line.split("(", 1)[0].split()[-1] == "socket" or server in line)
        ]

    def report(self, limit: int = 20) -> str:
        """The calls that could leave the machine, for a failure message."""
        shown = "\n".join(self.leaving[:limit])
        more = len(self.leaving) - limit
        return shown + (f"\n... and {more} more" if more > 0 else "")


def socket_calls(log: Path) -> SocketCalls:
    """Sort the socket calls in strace's ``log`` into local ones and ones that could leave."""
    local: list[str] = []
    leaving: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        call = _CALL.match(line)
        if call is None:
            continue  # another thread's "<... resumed>" end of a call already seen
        name, arguments = call.groups()
        if name.startswith("socket"):
            family = _FIRST_ARGUMENT.match(arguments)
            families = [family.group(0) if family else arguments]
        else:
            families = _ADDRESS.findall(arguments)
            if not families:
                continue  # sent on a connected socket: judged where it was made
        (local if LOCAL_FAMILIES.issuperset(families) else leaving).append(line)
    return SocketCalls(local, leaving)
