"""Append-only schema history. Never edit a migration that has shipped; add a new one."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("selfspec")


def _run(db: Database, *statements: str) -> None:
    for sql in statements:
        db.execute(sql)


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            domain TEXT NOT NULL,
            base_model TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE seed_sets (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            UNIQUE (project_id, name)
        )""",
        """CREATE TABLE seeds (
            id INTEGER PRIMARY KEY,
            set_id INTEGER NOT NULL REFERENCES seed_sets(id) ON DELETE CASCADE,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL,
            task_type TEXT NOT NULL DEFAULT 'general',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (set_id, instruction, input)
        )""",
        "CREATE INDEX seeds_by_set ON seeds(set_id)",
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            sha256 TEXT NOT NULL,
            chars INTEGER NOT NULL,
            imported_at TEXT NOT NULL,
            UNIQUE (project_id, sha256)
        )""",
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            char_start INTEGER NOT NULL,
            char_end INTEGER NOT NULL,
            n_tokens INTEGER NOT NULL,
            UNIQUE (document_id, ordinal)
        )""",
        "CREATE INDEX chunks_by_project ON chunks(project_id)",
        """CREATE TABLE chunk_vectors (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
            stage TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            pid INTEGER,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            counts TEXT NOT NULL DEFAULT '{}',
            error TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX runs_by_project ON runs(project_id, id)",
        """CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('gguf', 'hf')),
            path TEXT NOT NULL,
            architecture TEXT NOT NULL,
            info TEXT NOT NULL DEFAULT '{}',
            added_at TEXT NOT NULL
        )""",
    )


@migrations(name="m002_generation")
def m002_generation(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE generations (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            config TEXT NOT NULL,
            target INTEGER NOT NULL,
            phase TEXT NOT NULL DEFAULT 'brainstorm' CHECK (phase IN ('brainstorm', 'respond', 'done')),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX generations_by_project ON generations(project_id, id)",
        """CREATE TABLE gen_prompts (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            seed_ids TEXT NOT NULL DEFAULT '[]',
            mixed_ids TEXT NOT NULL DEFAULT '[]',
            output TEXT NOT NULL,
            finish TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            tokens INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (generation_id, idx)
        )""",
        """CREATE TABLE candidates (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
            prompt_idx INTEGER NOT NULL,
            item_idx INTEGER NOT NULL,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            task_type TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (status IN ('kept', 'dropped')),
            reason TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            UNIQUE (generation_id, prompt_idx, item_idx)
        )""",
        "CREATE INDEX candidates_by_status ON candidates(generation_id, status)",
        """CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            generation_id INTEGER REFERENCES generations(id) ON DELETE CASCADE,
            candidate_id INTEGER UNIQUE REFERENCES candidates(id) ON DELETE CASCADE,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL,
            task_type TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'pending',
            flag TEXT NOT NULL DEFAULT '',
            provenance TEXT NOT NULL DEFAULT '{}',
            passages TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX examples_by_project ON examples(project_id, status)",
        "CREATE INDEX examples_by_generation ON examples(generation_id)",
    )


@migrations(name="m003_review")
def m003_review(db: Database) -> None:
    _run(
        db,
        # the current version of an example's text (0 = as generated or imported)
        "ALTER TABLE examples ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE examples ADD COLUMN chars INTEGER GENERATED ALWAYS AS"
        " (length(instruction) + length(input) + length(output)) VIRTUAL",
        "CREATE INDEX examples_by_type ON examples(project_id, task_type)",
        "CREATE INDEX examples_by_flag ON examples(project_id, flag)",
        """CREATE TABLE example_versions (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            instruction TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            task_type TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (example_id, version)
        )""",
        """CREATE TABLE review_actions (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            session TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            changed INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            undone_at TEXT
        )""",
        "CREATE INDEX review_actions_by_session ON review_actions(project_id, session, id)",
        """CREATE TABLE review_changes (
            action_id INTEGER NOT NULL REFERENCES review_actions(id) ON DELETE CASCADE,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            before_status TEXT NOT NULL,
            before_flag TEXT NOT NULL,
            before_version INTEGER NOT NULL,
            after_status TEXT NOT NULL,
            after_flag TEXT NOT NULL,
            after_version INTEGER NOT NULL,
            PRIMARY KEY (action_id, example_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX review_changes_by_example ON review_changes(example_id)",
        """CREATE VIRTUAL TABLE examples_fts USING fts5(
            instruction, input, output, content='examples', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER examples_fts_insert AFTER INSERT ON examples BEGIN
            INSERT INTO examples_fts(rowid, instruction, input, output)
            VALUES (new.id, new.instruction, new.input, new.output);
        END""",
        """CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN
            INSERT INTO examples_fts(examples_fts, rowid, instruction, input, output)
            VALUES ('delete', old.id, old.instruction, old.input, old.output);
        END""",
        """CREATE TRIGGER examples_fts_update AFTER UPDATE OF instruction, input, output ON examples BEGIN
            INSERT INTO examples_fts(examples_fts, rowid, instruction, input, output)
            VALUES ('delete', old.id, old.instruction, old.input, old.output);
            INSERT INTO examples_fts(rowid, instruction, input, output)
            VALUES (new.id, new.instruction, new.input, new.output);
        END""",
        "INSERT INTO examples_fts(examples_fts) VALUES ('rebuild')",
    )


@migrations(name="m004_adapters")
def m004_adapters(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE adapters (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            base_model TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'training'
                CHECK (status IN ('training', 'interrupted', 'failed', 'done')),
            config TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            examples INTEGER NOT NULL,
            metrics TEXT NOT NULL DEFAULT '{}',
            path TEXT NOT NULL,
            is_current INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (project_id, name)
        )""",
        """CREATE TABLE train_steps (
            adapter_id INTEGER NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            loss REAL NOT NULL,
            lr REAL NOT NULL,
            tokens INTEGER NOT NULL,
            seconds REAL NOT NULL,
            val_loss REAL,
            PRIMARY KEY (adapter_id, step)
        ) WITHOUT ROWID""",
    )


@migrations(name="m005_exports")
def m005_exports(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE exports (
            id INTEGER PRIMARY KEY,
            adapter_id INTEGER NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'interrupted', 'failed', 'done')),
            path TEXT NOT NULL,
            files TEXT NOT NULL DEFAULT '{}',
            parity TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX exports_by_adapter ON exports(adapter_id, id)",
    )


@migrations(name="m006_chats")
def m006_chats(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            title TEXT NOT NULL DEFAULT '',
            models TEXT NOT NULL DEFAULT '[]',
            system TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX conversations_by_project ON conversations(project_id, id)",
        """CREATE TABLE chat_messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            pane INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            tokens INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0,
            stopped INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX chat_messages_by_conversation ON chat_messages(conversation_id, id)",
    )


@migrations(name="m007_evals")
def m007_evals(db: Database) -> None:
    _run(
        db,
        "ALTER TABLE seeds ADD COLUMN held_out INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE evals (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'interrupted', 'failed', 'done')),
            config_key TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',
            fingerprints TEXT NOT NULL DEFAULT '{}',
            results TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX evals_by_project ON evals(project_id, id)",
        """CREATE TABLE eval_items (
            eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
            dataset TEXT NOT NULL,
            model TEXT NOT NULL,
            item_key TEXT NOT NULL,
            gold TEXT NOT NULL,
            prediction TEXT NOT NULL,
            score REAL NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (eval_id, dataset, model, item_key)
        )""",
    )


@migrations(name="m008_locks_relative_paths")
def m008_locks_relative_paths(db: Database) -> None:
    """One writer per unit of work; paths under the home kept relative to it."""
    import json
    from pathlib import Path

    _run(
        db,
        """CREATE TABLE locks (
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            unit TEXT NOT NULL,
            pid INTEGER NOT NULL,
            proc_start TEXT NOT NULL DEFAULT '',
            command TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL,
            PRIMARY KEY (project_id, unit)
        )""",
    )
    home = db.execute("PRAGMA database_list").fetchall()[0][2]
    base = Path(home).resolve().parent if home else None
    if base is None:
        return

    def rel(value: str) -> str:
        p = Path(value)
        if not p.is_absolute():
            return value
        try:
            return p.resolve().relative_to(base).as_posix()
        except ValueError:
            return value

    for table in ("adapters", "exports"):
        for row_id, value in db.execute(f"SELECT id, path FROM {table}").fetchall():
            db.execute(f"UPDATE {table} SET path = ? WHERE id = ?", [rel(value), row_id])

    for row_id, files in db.execute("SELECT id, files FROM exports").fetchall():
        try:
            parsed = json.loads(files or "{}")
        except ValueError:
            continue
        if isinstance(parsed, dict):
            fixed = {k: rel(v) if isinstance(v, str) else v for k, v in parsed.items()}
            db.execute("UPDATE exports SET files = ? WHERE id = ?", [json.dumps(fixed, sort_keys=True), row_id])


@migrations(name="m009_grounded_prompts")
def m009_grounded_prompts(db: Database) -> None:
    """The corpus chunk a grounded brainstorm prompt was built on (NULL for ungrounded prompts)."""
    _run(db, "ALTER TABLE gen_prompts ADD COLUMN passage_id INTEGER")


@migrations(name="m010_example_ratings")
def m010_example_ratings(db: Database) -> None:
    """A reviewer's 1-5 rating of an example (NULL: not rated), beside accept/reject."""
    _run(db, "ALTER TABLE examples ADD COLUMN rating INTEGER")
