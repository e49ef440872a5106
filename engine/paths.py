"""Where things live on disk. Every path derives from the home folder (SELFSPEC_HOME)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import UserError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def home() -> Path:
    """The home folder: $SELFSPEC_HOME, else the platform's user data folder."""
    env = os.environ.get("SELFSPEC_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("selfspec-tui", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def db_path() -> Path:
    return home() / "selfspec.db"


def validate_project_name(name: str) -> str:
    """Project names become folder names, so they are kept to a safe alphabet.

    Lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63
    characters: no separators, no dots, so a name can never point outside the home folder.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(
            f"invalid project name {name!r}: use 1-63 lowercase letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return name


def project_dir(name: str) -> Path:
    """The project's own folder for indexes, checkpoints and exports."""
    validate_project_name(name)
    root = (home() / "projects").resolve()
    path = (root / name).resolve()
    if path.parent != root:  # belt and braces on top of the name check
        raise UserError(f"project folder for {name!r} would escape {root}")
    return path


def shipped_dir() -> Path:
    """Shipped data (seed sets, demo corpus): inside the wheel, or the repo's seeds/ folder."""
    here = Path(__file__).resolve().parent
    packed = here / "_shipped"
    if packed.is_dir():
        return packed
    return here.parent / "seeds"
