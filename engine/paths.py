"""Where things live on disk. Every path derives from the home folder (SELFSPEC_HOME).

This module is also the one place that decides whether a name may become a path, whether a
path the user gave is a file we may read or write, and how paths are kept in the store
(relative to the home, so a copied or moved home keeps working).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from engine.errors import UserError

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
STORE_FILES = ("selfspec.db", "selfspec.db-wal", "selfspec.db-shm", "selfspec.db-journal")


def home() -> Path:
    """The home folder: $SELFSPEC_HOME, else the platform's user data folder (created 0700)."""
    env = os.environ.get("SELFSPEC_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("selfspec-tui", appauthor=False))
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        _chmod(path, PRIVATE_DIR)
    elif (path / "selfspec.db").is_file():
        make_private(path)  # a home made by an older version may be readable by others
    return path.resolve()


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:
        pass  # not ours, or a read-only file system: the open that follows says what is wrong


def make_private(path: Path) -> None:
    """Our own files and folders are for their owner only (conversations and data are private)."""
    try:
        st = path.lstat()
    except OSError:
        return
    if st.st_uid != os.getuid() or stat.S_ISLNK(st.st_mode):
        return
    if stat.S_IMODE(st.st_mode) & 0o077:
        _chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


def private_umask() -> None:
    """Everything this process creates is owner-only (0600 files, 0700 folders)."""
    os.umask(0o077)


def db_path() -> Path:
    return home() / "selfspec.db"


def validate_project_name(name: str) -> str:
    """Project names become folder names, so they are kept to a safe alphabet.

    Lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63
    characters: no separators, no dots, so a name can never point outside the home folder.
    """
    if not isinstance(name, str) or not _PROJECT_RE.match(name):
        raise UserError(
            f"invalid project name {name!r}: use 1-63 lowercase letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return name


def validate_name(name: str, what: str) -> str:
    """Names of adapters, models, seed sets and exports: letters, digits, '.', '_', '-'.

    They start with a letter or digit and hold no separator, so as a path they are one folder
    or file name inside their parent and never '.', '..' or absolute.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(
            f"invalid {what} name {name!r}: use 1-80 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit (no '/' or spaces)"
        )
    return name


def child(parent: Path, name: str, what: str) -> Path:
    """`parent / name` for a validated name, checked to resolve to a direct child of parent."""
    validate_name(name, what)
    root = parent.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise UserError(f"{what} {name!r} would leave its folder {root}")
    return path


def is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


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


# ---- paths kept in the store ----------------------------------------------------------------


def to_stored(path: Path | str) -> str:
    """How a path is kept in the store: relative to the home when inside it, else absolute."""
    p = Path(path)
    base = home()
    try:
        return p.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(p)


def from_stored(value: str) -> str:
    """The absolute path for a stored one (old stores kept absolute paths: those pass through).

    A stored relative path is resolved under the home and must stay there.
    """
    if not value:
        return value
    p = Path(value)
    if p.is_absolute():
        return value
    base = home()
    full = (base / p).resolve()
    if not is_inside(full, base):
        raise UserError(f"the store names a path outside the home folder ({value!r}); the store was tampered with")
    return str(full)


# ---- files the user names -------------------------------------------------------------------


def describe_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def not_regular(path: Path) -> str | None:
    """Why `path` (following symlinks) cannot be read as a file, or None if it is a regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "no such file" if not path.is_symlink() else "a broken symbolic link"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = describe_kind(st.st_mode)
    return f"is {kind}" + (" (through a symbolic link)" if path.is_symlink() else "")


def regular_file(path: Path, expected: str = "a file") -> Path:
    """`path` if it is a regular file (symlinks followed); a UserError that says what it is otherwise.

    Pipes, devices and sockets are refused before anything opens them: reading one can block
    for ever (a FIFO) or never end (/dev/zero).
    """
    why = not_regular(path)
    if why is not None:
        if why.startswith("is a folder"):
            raise UserError(f"{path}: is a folder, expected {expected}")
        raise UserError(f"{path}: {why}, expected {expected}")
    return path


def model_path_kind(path: Path) -> str:
    """'dir' or 'file' for a model path; refuses anything else (pipes, devices)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise UserError(f"{path}: is {describe_kind(st.st_mode)}, expected a .gguf file or a model folder")


def protected_paths(db: object | None = None) -> list[Path]:
    """Files an output option must never write: the store and its WAL/SHM/journal, and every
    file or folder the store points at (registered models, adapters, exports)."""
    base = home()
    found = [base / f for f in STORE_FILES]
    if db is not None:
        for sql in ("SELECT path FROM models", "SELECT path FROM adapters", "SELECT path FROM exports"):
            try:
                for (value,) in db.execute(sql).fetchall():  # type: ignore[attr-defined]
                    if value:
                        found.append(Path(from_stored(str(value))))
            except Exception:  # an old or damaged store: the fixed list still holds
                continue
    return found


def _same_file(a: Path, b: Path) -> bool:
    """A hard link is the same file under another name."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: Path, db: object | None = None, what: str = "output file") -> Path:
    """Refuse an output path that would write over the store or anything it points at.

    Also refuses folders, pipes and devices (writing one can hang or go nowhere) and paths
    inside the home's own folders other than a project's `exports` folder.
    """
    path = path.expanduser()
    full = path.resolve()
    base = home()
    for guarded in protected_paths(db):
        g = guarded.resolve()
        if full == g or is_inside(full, g) or _same_file(full, g):
            raise UserError(f"{path}: refusing to write the {what} over {g} (the store or a file it keeps)")
    if is_inside(full, base):
        rel = full.relative_to(base).parts
        allowed = len(rel) == 4 and rel[0] == "projects" and rel[2] == "exports"
        if not allowed:
            raise UserError(
                f"{path}: refusing to write the {what} inside the selfspec home {base}"
                " (write it elsewhere, or into a project's exports/ folder)"
            )
    if path.exists() or path.is_symlink():
        why = not_regular(path)
        if why is not None:
            raise UserError(f"{path}: {why}; the {what} must be a regular file")
    return path
