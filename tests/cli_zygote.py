"""A zygote for crash tests: imports modelrecon once, then forks a fresh `modelrecon` command line
per request, so a test can kill -9 and restart servers and attacks without paying the imports.

Protocol: one JSON line on stdin per command, {"argv": [...], "env": {...}, "log": PATH}; the
zygote answers the child's pid on stdout.  The child writes its output to PATH and its exit
status to PATH + ".rc"."""

from __future__ import annotations

import json
import os
import signal
import sys

import modelrecon.attacks.relu2  # noqa: F401  (preloaded for the children)
import modelrecon.cli
import modelrecon.serve.app  # noqa: F401
import modelrecon.serve.client  # noqa: F401
import uvicorn  # noqa: F401


def child(argv: list[str], env: dict[str, str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(env)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sys.argv = ["modelrecon", *argv]
    code = 0
    try:
        modelrecon.cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    with open(log + ".rc", "w") as f:
        f.write(str(code))
    sys.stdout.flush()
    os._exit(code)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(cmd["argv"], cmd.get("env", {}), cmd["log"])
        print(pid, flush=True)


if __name__ == "__main__":
    main()
