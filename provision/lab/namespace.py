"""Set up one lab host inside the fresh mount and UTS namespaces `unshare` made, then start its daemon.

The program that runs inside the namespaces: provision.lab.processes runs `unshare --mount --uts
--propagation private -- python -m provision.lab.namespace --hostname NAME --bind SOURCE TARGET ...
-- COMMAND...`. Everything here is argv lists and syscalls, no shell script. The daemon runs in a forked
child so that the caller can wait for this process and learn the daemon's pid from stdout without
adopting it as a child.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m provision.lab.namespace",
                                     description="Bind a lab host's private directories, set its "
                                                 "hostname, start COMMAND; print COMMAND's pid.")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--bind", nargs=2, action="append", default=[], metavar=("SOURCE", "TARGET"),
                        help="bind-mount directory SOURCE over TARGET (repeatable, applied in order)")
    parser.add_argument("command", nargs="+", help="program and arguments to run, after `--`")
    return parser.parse_args(argv)


def _bind(source_fd: int, target: str) -> None:
    """Bind the directory open as source_fd over target.

    The source goes by its open descriptor because an earlier bind may have hidden its path;
    --no-canonicalize keeps mount(8) from resolving /proc/self/fd/N back to that hidden path.
    """
    subprocess.run(["mount", "--no-canonicalize", "--bind", f"/proc/self/fd/{source_fd}", target],
                   pass_fds=[source_fd], check=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        # Open every source first: the lab directory may live under /tmp or /root, which a bind hides.
        binds = [(os.open(source, os.O_PATH | os.O_DIRECTORY), target) for source, target in args.bind]
        for source_fd, target in binds:
            _bind(source_fd, target)
        socket.sethostname(args.hostname)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"lab namespace: {args.hostname}: {error}", file=sys.stderr)
        return 1
    child = os.fork()
    if child:
        print(child, flush=True)
        return 0
    os.dup2(2, 1)  # the caller reads our stdout to its end: the daemon must not hold it open
    try:
        os.execv(args.command[0], args.command)
    except OSError as error:
        print(f"lab namespace: {args.hostname}: cannot run {args.command[0]}: {error}", file=sys.stderr)
    os._exit(127)


if __name__ == "__main__":
    sys.exit(main())
