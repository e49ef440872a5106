"""Per-step training records (loss, learning rate, tokens, time, validation loss), one table per
kind of trained thing: an adapter's steps and a mixture router's steps are stored the same way."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from engine.store.db import write_txn
from engine.store.records import from_row


@dataclass(frozen=True)
class StepRecord:
    step: int
    epoch: int
    loss: float
    lr: float
    tokens: int
    seconds: float
    val_loss: float | None


@dataclass(frozen=True)
class StepLog:
    table: str
    """a constant of this package (never user input): train_steps or mixture_steps"""
    owner: str
    """its owner column: adapter_id or mixture_id"""

    def record(self, db: Database, owner_id: int, rec: StepRecord) -> None:
        with write_txn(db):
            db.execute(
                f"INSERT OR REPLACE INTO {self.table} ({self.owner}, step, epoch, loss, lr, tokens, seconds, val_loss)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [owner_id, rec.step, rec.epoch, rec.loss, rec.lr, rec.tokens, rec.seconds, rec.val_loss],
            )

    def forget_after(self, db: Database, owner_id: int, step: int) -> None:
        """Steps logged after the checkpoint a resume starts from are redone, so they are dropped."""
        with write_txn(db):
            db.execute(f"DELETE FROM {self.table} WHERE {self.owner} = ? AND step > ?", [owner_id, step])

    def read(self, db: Database, owner_id: int) -> list[StepRecord]:
        rows = db.query(
            f"SELECT step, epoch, loss, lr, tokens, seconds, val_loss FROM {self.table} WHERE {self.owner} = ?"
            " ORDER BY step",
            [owner_id],
        )
        return [from_row(StepRecord, r) for r in rows]


TRAIN_STEPS = StepLog("train_steps", "adapter_id")
MIXTURE_STEPS = StepLog("mixture_steps", "mixture_id")
