"""The schema history, continued from m011 (migrations.py holds m001-m010 and is never edited).

Importing this module registers every migration on the one `migrations` object; the store opens
through it (engine.store.db)."""

from __future__ import annotations

from sqlite_utils import Database

from engine.store.migrations import _run, migrations

__all__ = ["migrations"]


@migrations(name="m011_mixtures")
def m011_mixtures(db: Database) -> None:
    """Mixtures of experts (Self-MoE): experts from several projects behind one learned router."""
    _run(
        db,
        """CREATE TABLE mixtures (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            base_model TEXT NOT NULL,
            experts TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',
            fingerprint TEXT NOT NULL DEFAULT '',
            examples INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'created',
            metrics TEXT NOT NULL DEFAULT '{}',
            path TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE mixture_steps (
            mixture_id INTEGER NOT NULL REFERENCES mixtures(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            loss REAL NOT NULL,
            lr REAL NOT NULL,
            tokens INTEGER NOT NULL,
            seconds REAL NOT NULL,
            val_loss REAL,
            PRIMARY KEY (mixture_id, step)
        )""",
    )
