"""`selfspec-tui`: no arguments opens the TUI; anything else runs the headless engine CLI.

Headless commands are handed to `python -m engine --format text` by exec, so the front end
never loads the ML stack and exit codes pass through unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys


def _engine(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "engine", "--format", "text", *args]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    project = None
    if args[:1] == ["--project"] and len(args) == 2:
        project, args = args[1], []
    if args and args[0] == "demo" and "--open" in args:
        args.remove("--open")
        code = subprocess.call(_engine(args))
        if code not in (0, 3):
            return code
        project = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--project"), "demo")
        args = []
    if args:
        cmd = _engine(args)
        os.execv(cmd[0], cmd)
    from engine.errors import UserError
    from engine.paths import private_umask
    from selfspec_tui.app import SelfSpecApp

    private_umask()  # conversations and data are private
    try:
        app = SelfSpecApp(project)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
