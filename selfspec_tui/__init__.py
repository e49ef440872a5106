"""Textual front end of selfspec-tui. Never imports the ML stack; heavy work runs in engine children."""

__version__ = "0.1.0"
