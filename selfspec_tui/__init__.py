"""Textual front end of selfspec-tui. Never imports the ML stack; heavy work runs in engine children."""

__version__ = "0.1.0"

import engine  # noqa: E402,F401  (first: sqlite-utils loads without pandas, see engine/__init__.py)
