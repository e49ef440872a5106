"""Chat with the base model and the experts: which GGUF files can talk, and one turn of talk.

A model is named by a spec: `base`, `NAME` (the expert's Q8_0 if exported, else its f16),
`NAME:q4_k_m` / `NAME:f16` (one of its exported files), or `base+NAME` (the base GGUF with the
expert's LoRA GGUF on top). Side-by-side turns stream both replies interleaved, token by token.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.spec import events as ev
from engine.stages import models
from engine.stages.context import Context
from engine.store import adapters, chats
from engine.store.records import Project

GROUND_PASSAGES = 3
"""corpus passages a grounded chat turn reads"""
GROUND_FLOOR = 0.3
"""a passage scoring below this cosine is not shown to the model (as in generation)"""


@dataclass(frozen=True)
class Choice:
    spec: str
    label: str
    path: Path
    lora: Path | None
    prompt_format: str  # "chat" (the GGUF's own template) or "alpaca"
    mixture: str = ""
    """a mixture of experts (Self-MoE): each message goes to the expert its router prefers"""


def available(ctx: Context, project: Project) -> list[Choice]:
    out: list[Choice] = []
    kind, base_path, _ = models.resolve(ctx.db, project.base_model)
    base_gguf = base_path if kind == "gguf" else None
    if base_gguf:
        from engine.backends.chat_template import read_template

        # a base model without a chat template (a pretrained, not instruction-tuned, model) is
        # prompted with the same Alpaca blocks generation uses for it
        templated = read_template("gguf", base_gguf) is not None
        out.append(Choice("base", f"base: {project.base_model}", base_gguf, None, "chat" if templated else "alpaca"))
    for a in adapters.list_for(ctx.db, project):
        if a.status != "done":
            continue
        fmt = a.config.get("train", {}).get("prompt_format", "alpaca")
        folder = paths.child(ctx.workdir / "exports", a.name, "export")
        files = sorted(folder.glob("model-*.gguf"))
        for f in sorted(files, key=lambda p: (p.name != "model-q8_0.gguf", p.name)):
            quant = f.name[len("model-") : -len(".gguf")]
            out.append(Choice(f"{a.name}:{quant}", f"expert {a.name} ({quant})", f, None, fmt))
        if base_gguf and (folder / "adapter-f16.gguf").exists():
            out.append(Choice(f"base+{a.name}", f"base + LoRA {a.name}", base_gguf, folder / "adapter-f16.gguf", fmt))
    from engine.stages.mixture_gguf import chat_choices

    for spec, label, gguf, fmt in chat_choices(ctx, project.name):
        out.append(Choice(spec, label, gguf, None, fmt, mixture=spec[4:]))
    return out


def resolve(ctx: Context, project: Project, spec: str) -> Choice:
    found = available(ctx, project)
    for c in found:
        if c.spec == spec:
            return c
    for c in found:  # a bare expert name: its first file (Q8_0 when there is one)
        if c.spec.startswith(f"{spec}:"):
            return c
    names = ", ".join(c.spec for c in found) or "none (export an expert first: selfspec-tui export)"
    raise UserError(f"no chat model {spec!r} in {project.name}; available: {names}")


def check_sampling(req: dict[str, Any]) -> dict[str, Any]:
    """temperature, top_p, max_tokens and stop strings from a request, checked against ChatSampling
    (the defaults are its own); a UserError names the field."""
    from pydantic import ValidationError

    from engine.spec.chat import ChatSampling

    data = {k: req[k] for k in ChatSampling.model_fields if req.get(k) is not None}
    stop = data.get("stop", ())
    if not isinstance(stop, list | tuple) or not all(isinstance(t, str) and t for t in stop):
        raise UserError("stop: expected a list of non-empty strings")
    try:
        s = ChatSampling.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "sampling"
        raw = data.get(name)
        if "parsing" in err["type"] or err["type"].endswith("_type"):
            raise UserError(f"{name}: {raw!r} is not a number") from None
        raise UserError(f"{name}: {raw!r} must be {err['msg'].removeprefix('Input should be ')}") from None
    return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "stop": list(s.stop)}


class Talker:
    """Loaded models (at most `keep` at a time) and one conversation turn across panes."""

    def __init__(self, ctx: Context, project: Project, keep: int = 2) -> None:
        self.ctx, self.project, self.keep = ctx, project, keep
        self._loaded: dict[str, Any] = {}
        self._searcher: Any = None
        self.passages: list[dict[str, Any]] = []
        """the passages the last grounded turn was given"""

    def check_corpus(self) -> None:
        from engine.store import projects

        if not projects.summary(self.ctx.db, self.project)["chunks"]:
            raise UserError("grounded chat needs a corpus: import documents first (selfspec-tui corpus import)")

    def ground(self, text: str) -> str:
        """The message with the corpus passages most like it above it (they go to the models; the
        conversation stores what the user typed). Passages scoring below GROUND_FLOOR are left out."""
        from engine.stages.corpus import Searcher

        self.check_corpus()
        if self._searcher is None:
            self._searcher = Searcher(self.ctx)
        hits = [h for h in self._searcher.search(text, GROUND_PASSAGES) if h.score >= GROUND_FLOOR]
        self.passages = [
            {"source": h.chunk.source, "score": round(h.score, 3), "text": " ".join(h.chunk.text.split())} for h in hits
        ]
        if not hits:
            return text
        block = "\n".join(f"[{i}] {p['text']}" for i, p in enumerate(self.passages, 1))
        return f"Passages from the documents:\n{block}\n\nUsing the passages where they help, answer: {text}"

    def model(self, choice: Choice) -> Any:
        from engine.backends.runtimes import llamacpp

        key = f"mix:{choice.mixture}" if choice.mixture else f"{choice.path}|{choice.lora}"
        if key not in self._loaded:
            while len(self._loaded) >= self.keep:
                self._loaded.pop(next(iter(self._loaded))).close()
            if choice.mixture:
                from engine.stages.mixture_gguf import MixedChat

                self._loaded[key] = MixedChat(self.ctx, choice.mixture)
            else:
                self._loaded[key] = llamacpp.load_llama(choice.path, self.ctx.threads, lora=choice.lora)
        return self._loaded[key]

    def turn(
        self,
        conversation: chats.Conversation,
        text: str,
        sampling: dict[str, Any],
        should_stop: Any,
        on_piece: Any,
        grounded: bool = False,
    ) -> list[dict[str, Any]]:
        """Stream every pane's reply (interleaved), then store the user turn and the replies together.

        Nothing is stored when a model cannot load or llama.cpp refuses the prompt (a conversation
        longer than the context), so a failed turn leaves no unanswered question behind. Grounded,
        the models read the passages retrieved for the message (self.passages) above it.
        """
        from engine.backends.runtimes import llamacpp

        choices = [resolve(self.ctx, self.project, spec) for spec in conversation.models]
        loaded = [self.model(c) for c in choices]
        self.passages = []
        asked = self.ground(text) if grounded else text
        # a mixture answers with the expert its router prefers for this message: named with the reply
        answered = [f"{c.spec}→{m.route(text)}" if c.mixture else c.spec for c, m in zip(choices, loaded)]
        llms = [m.llm if c.mixture else m for c, m in zip(choices, loaded)]
        streams = []
        for pane, (c, llm) in enumerate(zip(choices, llms)):
            turns = chats.history(self.ctx.db, conversation.id, pane) + [{"role": "user", "content": asked}]
            streams.append(
                llamacpp.stream_reply(
                    llm,
                    c.prompt_format,
                    conversation.system,
                    turns,
                    sampling,
                    list(sampling.get("stop") or []),
                    should_stop,
                )
            )
        texts = [""] * len(streams)
        busy = [0.0] * len(streams)  # time spent generating for each pane (they take turns)
        first = [0.0] * len(streams)  # time to the first piece: reading the prompt, not generating
        live = set(range(len(streams)))
        while live:
            for pane in sorted(live):
                t0 = time.perf_counter()
                try:
                    piece = next(streams[pane])
                except StopIteration:
                    live.discard(pane)
                    continue
                except (ValueError, RuntimeError) as exc:
                    raise UserError(f"{choices[pane].spec}: {exc}") from exc
                finally:
                    busy[pane] += time.perf_counter() - t0
                if not first[pane]:
                    first[pane] = busy[pane]
                texts[pane] += piece
                if piece:
                    on_piece(pane, piece)
        stopped = bool(should_stop())
        replies = []
        for pane in range(len(choices)):
            tokens = llamacpp.count_tokens(llms[pane], texts[pane])
            seconds = max(1e-6, busy[pane] - first[pane])  # the rate of generating, after the prompt
            replies.append(chats.Reply(pane, texts[pane].strip(), answered[pane], tokens, seconds, stopped))
        chats.add_turn(self.ctx.db, conversation.id, text, replies)
        return [
            {
                "pane": r.pane,
                "model": r.model,
                "tokens": r.tokens,
                "tokens_per_s": round(max(0, r.tokens - 1) / r.seconds, 1),
                "first_token_s": round(first[r.pane], 3),
                "stopped": r.stopped,
            }
            for r in replies
        ]

    def close(self) -> None:
        for llm in self._loaded.values():
            llm.close()
        self._loaded.clear()


def serve(ctx: Context) -> None:
    """JSON requests on stdin, one per line; events on stdout. Used by the TUI's Chat screen.

    The requests are engine.spec.events' LoadRequest (load models ahead of the first message),
    SendRequest (one message; a new conversation unless it names one) and StopRequest (stop the
    reply in flight), written as {"op": ..., fields}.
    """
    import queue

    project = ctx.need_project()
    talker = Talker(ctx, project)
    requests: queue.Queue[ev.LoadRequest | ev.SendRequest | None] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        for line in sys.stdin:
            try:
                req = ev.parse_request(json.loads(line))
            except json.JSONDecodeError as exc:
                ctx.emit(ev.TurnFailed(f"not a JSON request ({exc.msg}): {line.strip()[:80]!r}"))
            except RecursionError:
                ctx.emit(ev.TurnFailed("request nested too deeply"))
            except ValueError as exc:  # not JSON, not an object, or a field of the wrong kind
                ctx.emit(ev.TurnFailed(f"{exc}: {line.strip()[:80]!r}"))
            else:
                if isinstance(req, ev.StopRequest):
                    stop.set()
                else:
                    requests.put(req)
        requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    ctx.emit(ev.Ready([{"spec": c.spec, "label": c.label} for c in available(ctx, project)]))
    try:
        while (req := requests.get()) is not None:
            stop.clear()
            fresh: chats.Conversation | None = None
            if isinstance(req, ev.LoadRequest):  # warm the chosen models up before the first message
                try:
                    t0 = time.perf_counter()
                    for spec in req.models:
                        talker.model(resolve(ctx, project, spec))
                    ctx.emit(ev.Loaded(req.models, time.perf_counter() - t0))
                except UserError as exc:
                    ctx.emit(ev.TurnFailed(str(exc)))
                continue
            try:
                sampling = check_sampling(req.sampling())
                if not req.text.strip():
                    raise UserError("text: the message is empty")
                if req.conversation:
                    conv = chats.get(ctx.db, req.conversation)
                else:
                    specs = req.models or ["base"]
                    for spec in specs:
                        resolve(ctx, project, spec)
                    conv = fresh = chats.create(ctx.db, project, specs, req.system, " ".join(req.text.split()))
                    ctx.emit(ev.Conversation(conv.id, conv.models))
                replies = talker.turn(
                    conv,
                    req.text,
                    sampling,
                    lambda: stop.is_set() or ctx.should_stop(),
                    lambda pane, piece: ctx.emit(ev.Token(pane, piece)),
                    req.grounded,
                )
                ctx.emit(ev.Turn(conv.id, replies, talker.passages))
            except UserError as exc:
                if fresh is not None:  # a conversation whose first turn failed holds nothing worth keeping
                    chats.delete(ctx.db, fresh.id)
                ctx.emit(ev.TurnFailed(str(exc), fresh is not None))
            if ctx.should_stop():
                break
    finally:
        talker.close()


def repl(
    ctx: Context,
    specs: list[str],
    system: str,
    sampling: dict[str, Any],
    conversation: int | None,
    question: str | None = None,
    grounded: bool = False,
) -> None:
    """A plain terminal chat: type, read the streamed reply; Ctrl-C stops a reply, Ctrl-D or /exit leaves.
    With a question: that one turn, then exit (the conversation is stored like any other)."""
    if question is not None and not question.strip():
        raise UserError("--question: the question is empty")
    project = ctx.need_project()
    talker = Talker(ctx, project)
    if grounded:
        talker.check_corpus()  # before a conversation is stored
    if conversation:
        conv = chats.get(ctx.db, conversation)
        for m in chats.messages(ctx.db, conv.id):
            who = "you" if m.role == "user" else m.model
            print(f"{who}> {m.content}")
    else:
        for spec in specs:
            resolve(ctx, project, spec)
        conv = chats.create(ctx.db, project, specs, system, "")
    if question is None:
        print(
            f"chatting with {', '.join(conv.models)} (conversation {conv.id}); Ctrl-C stops a reply, /exit leaves",
            file=sys.stderr,
        )
    try:
        while True:
            if question is not None:
                if not question:
                    break
                text, question = question.strip(), ""  # one turn, then the loop ends
            else:
                try:
                    text = input("you> ").strip()
                except EOFError:
                    break
            if text in ("/exit", "/quit"):
                break
            if not text:
                continue
            later: dict[int, str] = {}
            sys.stdout.write(f"{conv.models[0]}> ")

            def show(pane: int, piece: str, later: dict[int, str] = later) -> None:
                if pane == 0:  # the first model streams; side-by-side replies follow it
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                else:
                    later[pane] = later.get(pane, "") + piece

            replies = talker.turn(conv, text, sampling, ctx.should_stop, show, grounded)
            for pane, reply in sorted(later.items()):
                sys.stdout.write(f"\n{conv.models[pane]}> {reply.strip()}")
            sys.stdout.write("\n")
            for i, p in enumerate(talker.passages, 1):
                sys.stdout.write(f"  [{i}] {p['source']} (score {p['score']:.2f}): {p['text'][:160]}\n")
            sys.stdout.flush()
            rates = ", ".join(f"{r['model']} {r['tokens_per_s']} tok/s" for r in replies)
            print(f"\n[{rates}{', stopped' if replies and replies[0]['stopped'] else ''}]", file=sys.stderr)
            ctx.stop_flag.clear()
    finally:
        talker.close()
