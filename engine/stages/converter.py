"""llama.cpp's own HF -> GGUF converters, matching the installed llama-cpp-python.

They ship inside llama-cpp-python's source distribution (vendor/llama.cpp). `tools setup`
fetches that sdist once from the package registry, at install time, and unpacks only the
converters, their `conversion` package and `gguf-py` beside the virtual environment; export
then runs them offline. Nothing of llama.cpp lives in this repository.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError

WANTED = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")
READY = "READY"


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError as exc:
        raise UserError("llama-cpp-python is not installed (bash .ci/install sets it up)") from exc


def converter_dir(version: str | None = None) -> Path:
    return Path(sys.prefix) / "share" / "selfspec-tui" / f"llama.cpp-{version or llama_cpp_version()}"


def find() -> Path:
    """The converter folder for the installed llama-cpp-python, or a message saying how to get it."""
    folder = converter_dir()
    if not (folder / READY).exists():
        raise UserError(
            f"llama.cpp's GGUF converter for llama-cpp-python {llama_cpp_version()} is not set up: run "
            "`selfspec-tui tools setup` once while the package registry is reachable (bash .ci/install does)"
        )
    return folder


def setup(sdist: Path | None = None) -> dict[str, Any]:
    """Unpack the converters from llama-cpp-python's sdist (downloaded unless given)."""
    if sdist is not None:
        paths.regular_file(sdist, "a llama-cpp-python source archive (.tar.gz)")
    version = llama_cpp_version()
    folder = converter_dir(version)
    if (folder / READY).exists() and sdist is None:
        return {"converter": str(folder), "llama_cpp_python": version, "fetched": False}
    with tempfile.TemporaryDirectory(prefix="selfspec-sdist-") as tmp:
        if sdist is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"llama-cpp-python=={version}",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--quiet",
                "--disable-pip-version-check",
                "-d",
                tmp,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if done.returncode != 0 or not found:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise UserError(f"could not download llama-cpp-python {version}'s source: {' | '.join(tail)}")
            sdist = found[0]
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        paths.regular_file(sdist, "a llama-cpp-python source archive (.tar.gz)")
        try:
            with tarfile.open(sdist) as tar:
                members = []
                for m in tar.getmembers():
                    if m.name.startswith(prefix) and m.name[len(prefix) :].startswith(WANTED):
                        m.name = m.name[len(prefix) :]
                        members.append(m)
                if not any(m.name == "convert_hf_to_gguf.py" for m in members):
                    raise UserError(f"{sdist}: no vendor/llama.cpp/convert_hf_to_gguf.py for version {version}")
                tar.extractall(partial, members=members, filter="data")
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise UserError(f"{sdist}: cannot unpack: {exc}") from exc
        (partial / READY).write_text(version)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return {"converter": str(folder), "llama_cpp_python": version, "fetched": True}
