"""Headless half of selfspec-tui: store, stages, backends and the `python -m engine` CLI.

Nothing in this package imports the Textual front end; heavy ML libraries are imported
lazily, only inside engine.backends.
"""

__version__ = "0.1.0"


def _sqlite_utils_without_pandas() -> None:
    """Import sqlite-utils with pandas hidden. It imports pandas, when installed, only to map
    pandas.Timestamp values to TEXT columns, which this project never stores; that import was
    ~0.4 s of every engine command's ~0.9 s start. pandas stays importable for anyone after."""
    import sys

    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` now raises ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["pandas"]


_sqlite_utils_without_pandas()
