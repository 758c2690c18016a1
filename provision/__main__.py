"""`python -m provision` and the `provision` command: interruptible from their first instruction.

Loading the command line takes a moment (paramiko, cryptography, click); a Ctrl-C or SIGTERM then ends
with `interrupted` and exit status 130, as it does later, instead of a traceback or a bare kill.
"""

import signal
import sys

#: The CLI's exit status for an interrupted run (provision.engine.EXIT_INTERRUPTED, not imported: loading
#: it is what may be interrupted).
_INTERRUPTED = 130


def run() -> None:
    """SIGTERM raises KeyboardInterrupt as SIGINT does, then the CLI is loaded and run."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from provision.cli.main import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(_INTERRUPTED)
    main()


if __name__ == "__main__":
    run()
