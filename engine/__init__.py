"""Headless half of selfspec-tui: store, stages, backends and the `python -m engine` CLI.

Nothing in this package imports the Textual front end; heavy ML libraries are imported
lazily, only inside engine.backends.
"""

__version__ = "0.1.0"
