"""Every command of `python -m engine` (and `selfspec-tui COMMAND`), declared once.

The CLI builds its parser from these declarations and runs the named handler; the TUI builds its
stage forms from the same knobs; tests walk this list. Adding a command is one entry here plus
its handler function in `engine.commands` (a large group may keep its entries in a module of its
own, as `mixture_commands.py` does, spliced in below).
"""

from __future__ import annotations

from engine.spec import chat, evaluate, generate, train
from engine.spec import events as ev
from engine.spec.defaults import DEFAULT_MODEL
from engine.spec.kinds import EXAMPLE_STATUSES
from engine.spec.mixture_commands import MIXTURE_COMMANDS
from engine.spec.stage import PROJECT, Command, opt

DATASET_FORMATS = ("alpaca", "sharegpt", "openai", "parquet")
GROUPS = {
    "project": "create, list or delete projects",
    "seeds": "import, validate or list seed tasks",
    "corpus": "import, index or search the domain corpus",
    "models": "register or list base models",
    "runs": "list runs",
    "examples": "list generated examples",
    "review": "review decisions from scripts: stats, accept, reject, flag, edit, undo, similar",
    "dataset": "export the training set or import examples",
    "adapters": "list the project's adapters (experts) or choose the current one",
    "tools": "one-time setup of external tools",
    "eval": "evaluate the expert against its base (per dataset, with intervals and baselines)",
    "mixture": "several experts behind a learned router (Self-MoE): create, train, list, chat",
}
_SELECT = (
    opt("--id", type=int, nargs="+", help="example ids"),
    opt("--status", choices=EXAMPLE_STATUSES),
    opt("--task-type"),
    opt("--reason", help="flag / reason contains this text"),
    opt("--flagged", action="store_true", help="only flagged examples"),
    opt("--generation", type=int, help="only this generation (0: imported examples)"),
    opt("--search", help="full-text search over instruction, input and response"),
    opt("--all", action="store_true", help="every example of the project"),
)
_C = "engine.commands."

COMMANDS: tuple[Command, ...] = (
    # ---- projects, seeds, corpus, models ----------------------------------------------------
    Command(
        "project create",
        _C + "project:create",
        "create a project",
        options=(
            opt("name"),
            opt("--domain", required=True),
            opt("--base-model", default=DEFAULT_MODEL),
            opt("--embedder", help="sentence-transformers folder (default: all-MiniLM-L6-v2)"),
        ),
    ),
    Command("project list", _C + "project:list_", "list projects"),
    Command(
        "project delete",
        _C + "project:delete",
        "delete a project and its files",
        options=(opt("name"), opt("--yes", action="store_true")),
    ),
    Command(
        "seeds import",
        _C + "seeds:import_",
        "import seeds from .jsonl, .csv or qna.yaml (all or nothing)",
        project=True,
        records_run=True,
        options=(opt("file"), opt("--set", help="seed set name (default: the file name)")),
    ),
    Command("seeds validate", _C + "seeds:validate", "check a seed file without importing it", options=(opt("file"),)),
    Command(
        "seeds list",
        _C + "seeds:list_",
        "list seeds",
        project=True,
        options=(opt("--task-type"), opt("--set"), opt("--grep")),
    ),
    Command(
        "seeds hold-out",
        _C + "evaluate:hold_out",
        "reserve a share of the seeds for evaluation (kept out of generation)",
        project=True,
        options=(
            opt("--fraction", type=float, default=0.2, help="share of seeds to hold out (0 releases them)"),
            opt("--seed", type=int, default=0),
        ),
    ),
    Command(
        "corpus import",
        _C + "corpus:import_",
        "import .txt/.md/.jsonl files or folders, embed and index them",
        project=True,
        records_run=True,
        lock="corpus import",
        resume="keyed",
        options=(opt("paths", nargs="+"),),
    ),
    Command(
        "corpus index",
        _C + "corpus:index",
        "embed chunks not yet embedded and bring the index up to date",
        project=True,
        records_run=True,
        lock="corpus import",
        resume="keyed",
        options=(opt("--rebuild", action="store_true", help="rebuild the index file from the store"),),
    ),
    Command("corpus list", _C + "corpus:list_", "list documents", project=True),
    Command(
        "corpus search",
        _C + "corpus:search",
        "top passages for a query",
        project=True,
        options=(opt("query"), opt("-k", type=int, default=5)),
    ),
    Command(
        "corpus serve",
        _C + "corpus:serve",
        "answer JSON search requests on stdin (used by the TUI)",
        project=True,
        events=(ev.Ready, ev.Result, ev.Log),
    ),
    Command(
        "models add",
        _C + "models:add",
        "register a .gguf file or a Hugging Face folder",
        options=(opt("path"), opt("--name")),
    ),
    Command("models list", _C + "models:list_", "list models"),
    Command(
        "models remove", _C + "models:remove", "forget a registered model (files are kept)", options=(opt("name"),)
    ),
    Command("doctor", _C + "models:doctor", "what this machine can do"),
    Command("runs list", _C + "project:runs", "recent runs", options=(opt("--project"),)),
    # ---- generation -------------------------------------------------------------------------
    Command(
        "generate",
        _C + "generate:run",
        "brainstorm domain tasks with the base model and answer them with retrieval (resumable)",
        description="Runs (or resumes) a generation: brainstorm, filter, then answer with retrieved passages. "
        "Without --new, an unfinished generation of the project is resumed.",
        project=True,
        records_run=True,
        lock="generation",
        config=generate.GenerateConfig,
        knobs=generate.knobs(),
        resume="refuse-changes",
        events=(ev.Progress, ev.Item, ev.Log),
        options=(
            opt("--resume", type=int, metavar="ID", help="resume this generation"),
            opt("--new", action="store_true", help="start a new generation even if one is unfinished"),
            opt("--status", action="store_true", help="list the project's generations and exit"),
        ),
    ),
    Command(
        "examples list",
        _C + "generate:examples",
        "newest examples, or dropped tasks with their reasons",
        project=True,
        options=(
            opt("--generation", type=int),
            opt("--dropped", action="store_true", help="show dropped tasks and why"),
            opt("--limit", type=int, default=30),
        ),
    ),
    # ---- review and datasets ----------------------------------------------------------------
    Command("review stats", _C + "review:stats", "examples per status, task type, generation and flag", project=True),
    Command(
        "review accept",
        _C + "review:decide",
        "accept the selected examples (edited ones stay edited)",
        project=True,
        options=_SELECT,
    ),
    Command("review reject", _C + "review:decide", "reject the selected examples", project=True, options=_SELECT),
    Command(
        "review reset", _C + "review:decide", "put the selected examples back to pending", project=True, options=_SELECT
    ),
    Command(
        "review flag",
        _C + "review:decide",
        "flag the selected examples with --reason-text (empty unflags)",
        project=True,
        options=(
            *_SELECT,
            opt("--reason-text", required=True, help="why (an empty string removes the flag)"),
        ),
    ),
    Command(
        "review edit",
        _C + "review:edit",
        "edit one example (the original is kept as version 0)",
        project=True,
        options=(
            opt("--id", type=int, nargs=1, required=True),
            *(
                opt(f"--{name.replace('_', '-')}", dest=f"new_{name}")
                for name in ("instruction", "input", "output", "task_type")
            ),
        ),
    ),
    Command(
        "review similar",
        _C + "review:similar",
        "the examples most like one example, by embedding cosine of instruction and input",
        project=True,
        options=(opt("--id", type=int, required=True), opt("-k", type=int, default=10, help="how many (default 10)")),
    ),
    Command(
        "review undo",
        _C + "review:undo",
        "undo the newest review action of a session (default: the CLI's)",
        project=True,
        options=(opt("--session", default="cli"),),
    ),
    Command(
        "dataset export",
        _C + "dataset:export",
        "write the approved examples (accepted + edited) to a file",
        project=True,
        records_run=True,
        options=(
            opt(
                "--format",
                dest="dataset_format",
                choices=DATASET_FORMATS,
                default="alpaca",
                help="alpaca/sharegpt/openai JSONL, or parquet (load with datasets.load_dataset('parquet', ...))",
            ),
            opt("--out", help="file to write (default: the project's exports folder)"),
            opt("--include-pending", action="store_true", help="also examples nobody has reviewed yet"),
            opt("--system", help="system message for the chat formats"),
        ),
    ),
    Command(
        "dataset import",
        _C + "dataset:import_",
        "add examples from a dataset file (validated; all or nothing)",
        project=True,
        records_run=True,
        options=(
            opt("file"),
            opt("--format", dest="dataset_format", choices=("auto", *DATASET_FORMATS), default="auto"),
            opt(
                "--as",
                dest="as_status",
                choices=("pending", "accepted", "rejected"),
                default="pending",
                help="status the imported examples get",
            ),
        ),
    ),
    # ---- training, adapters, export -----------------------------------------------------------
    Command(
        "train",
        _C + "train:run",
        "LoRA/QLoRA-tune the base model on the approved examples (resumable)",
        description="Trains (or resumes) an adapter. Without --new, the project's unfinished adapter resumes"
        " from its newest checkpoint.",
        project=True,
        records_run=True,
        lock="training",
        config=train.TrainConfig,
        knobs=train.knobs(),
        resume="refuse-changes",
        events=(ev.Progress, ev.Log),
        options=(
            opt("--resume", metavar="NAME", help="resume this adapter"),
            opt("--new", action="store_true", help="train a new adapter even if one is unfinished"),
        ),
    ),
    Command("adapters list", _C + "train:adapters", "adapters with status and metrics", project=True),
    Command(
        "adapters use",
        _C + "train:use",
        "make this adapter the project's current expert",
        project=True,
        options=(opt("name"),),
    ),
    Command(
        "export",
        _C + "export:run",
        "merge the adapter into its base, convert to GGUF, quantize, check parity (resumable)",
        project=True,
        records_run=True,
        lock="export",
        resume="keyed",
        events=(ev.Progress, ev.Log),
        options=(
            opt("--adapter", help="adapter name (default: the current one)"),
            opt("--quant", default="q8_0,q4_k_m", help="comma-separated: q8_0, q4_k_m, q4_0"),
            opt("--no-lora", action="store_true", help="skip the LoRA-only GGUF"),
            opt("--no-parity", action="store_true", help="skip the parity check"),
        ),
    ),
    Command(
        "tools setup",
        _C + "export:tools_setup",
        "fetch llama.cpp's GGUF converters matching llama-cpp-python (needs the registry)",
        options=(opt("--sdist", help="use this llama-cpp-python source archive instead of downloading it"),),
    ),
    # ---- chat and evaluation ----------------------------------------------------------------
    Command(
        "chat",
        _C + "chat:run",
        "chat in the terminal with the base model, an expert, or both side by side",
        project=True,
        config=chat.ChatSampling,
        knobs=chat.knobs(),
        events=(ev.Ready, ev.Loaded, ev.Conversation, ev.Token, ev.Turn, ev.TurnFailed),
        options=(
            opt("--model", action="append", help="base, EXPERT, EXPERT:QUANT or base+EXPERT (twice: side by side)"),
            opt("--system", help="system message"),
            opt("--conversation", type=int, help="reopen a stored conversation"),
            opt("-q", "--question", help="ask this one question, print the reply (or replies) and exit"),
            opt("--grounded", action="store_true", help="answer with passages retrieved from the project's corpus"),
            opt("--list", action="store_true", help="list the models and the stored conversations"),
            opt("--serve", action="store_true", help="JSON requests on stdin (used by the TUI)"),
        ),
    ),
    Command(
        "eval run",
        _C + "evaluate:run",
        "score base and expert on evaluation sets (resumable)",
        project=True,
        records_run=True,
        lock="evaluation",
        config=evaluate.EvalSettings,
        knobs=evaluate.knobs(),
        resume="keyed",
        events=(ev.Progress, ev.Log, ev.Result),
        options=(
            opt("--json", metavar="FILE", help="also write the full results as JSON"),
            opt("--new", action="store_true", help="start over instead of resuming the same settings"),
        ),
    ),
    Command("eval list", _C + "evaluate:list_", "list evaluations", project=True),
    Command(
        "eval show",
        _C + "evaluate:show",
        "print a finished evaluation's table",
        project=True,
        options=(opt("id", type=int), opt("--json", metavar="FILE")),
    ),
    *MIXTURE_COMMANDS,
    # ---- the demo ---------------------------------------------------------------------------
    Command(
        "demo",
        _C + "project:demo",
        "build the demo project from the shipped seeds and corpus",
        records_run=True,
        options=(
            opt("--project", default="demo"),
            opt("--reset", action="store_true", help="delete and rebuild the demo project"),
            opt("--examples", type=int, default=6, help="examples to generate with the base model"),
            opt("--train-epochs", type=int, default=1, help="epochs of the demo adapter's LoRA training (0: skip)"),
        ),
    ),
)

BY_NAME = {c.name: c for c in COMMANDS}


def stage(name: str) -> Command:
    """The declaration of a command, by its name ('generate', 'eval run')."""
    return BY_NAME[name]


__all__ = ["BY_NAME", "COMMANDS", "GROUPS", "PROJECT", "stage"]
