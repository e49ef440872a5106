"""The only code that speaks SQL. Functions take a Database and return frozen records."""

from engine.store import corpus, generation, projects, registry, runs, seeds
from engine.store.db import open_store

__all__ = ["open_store", "projects", "seeds", "corpus", "runs", "registry", "generation"]
