"""Many sequences in one llama.cpp context (the low-level API): batched sampling and batched scoring.

One context holds up to `n_seq` sequences, each in its own KV-cache stream (a unified cache makes
every token attend over every sequence's cells, which costs more than it saves once prompts are
long). The last sequence is the keeper: it holds the prefix every prompt of a call shares, cut
back to a multiple of PREFIX_STEP tokens, decoded from position 0 into an empty stream. The other
sequences start as copies of it plus their own tails. Generation uses them as slots: a prompt
enters a free slot, and every live slot advances one token per decode call (continuous batching).
Each sequence samples with its own seeded sampler chain.

The keeper outlives a call: the next call whose prompts share the same cut prefix (a scorer's
few-shot block, a brainstorm's head) starts from it instead of evaluating it again. Its cells are
made the same way whichever call made them, so a call's results depend only on its own prompts,
seeds and layout, never on the calls before it (a resumed run equals an uninterrupted one). The
slots are emptied after every call. Flash attention stays off, as in chat and export, so a score
here equals the high-level API's.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.types import Completion, Sampling
from engine.errors import UserError
from engine.spec.kinds import FinishReason

DECODE_CHUNK = 512
"""tokens per llama_decode call (llama.cpp splits further into its micro-batches)"""
PREFIX_STEP = 64
"""the keeper's prefix is the call's shared prefix cut back to a multiple of this: calls whose
shared prefixes differ only in a few trailing tokens keep the same one"""

Watch = Callable[[str, int], "int | None"]
"""Called with a sequence's text and token count so far; returns a character offset to end it there."""


def common_prefix(token_lists: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every list shares, leaving each list at least one token of its own."""
    if not token_lists:
        return 0
    first, n = token_lists[0], min(len(t) for t in token_lists) - 1
    for other in token_lists[1:]:
        i = 0
        while i < n and other[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


@dataclass
class _Live:
    """One sequence being sampled."""

    slot: int
    pos: int
    sampler: Any
    budget: int
    out: bytearray = field(default_factory=bytearray)
    tokens: int = 0
    text: str = ""
    finish: FinishReason | None = None
    scanned: int = 0
    last: int = -1
    """the token to feed next"""


class BatchContext:
    """A GGUF model and one multi-sequence context on it."""

    def __init__(self, path: Path, threads: int, cells: int, n_seq: int, lora: Path | None = None) -> None:
        """`cells`: the cache of each sequence (its longest prompt plus completion)."""
        import llama_cpp
        from llama_cpp import _internals as internals

        from engine.backends.gguf_meta import read_gguf_metadata
        from engine.backends.runtimes.llamacpp import c_stderr_to_log

        read_gguf_metadata(path)  # a broken header is a UserError naming the file
        from llama_cpp import _logger

        _logger.set_verbose(False)  # llama.cpp's debug log (graph and KV-copy traces) stays off stderr; errors show
        self._ll = llama_cpp
        self.n_seq = max(1, min(n_seq, int(llama_cpp.llama_max_parallel_sequences())))
        try:
            with c_stderr_to_log():
                llama_cpp.llama_backend_init()
                mparams = llama_cpp.llama_model_default_params()
                self.model = internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
                cparams = llama_cpp.llama_context_default_params()
                cparams.n_ctx = cells * max(1, min(n_seq, int(llama_cpp.llama_max_parallel_sequences())))
                cparams.n_batch = DECODE_CHUNK
                cparams.n_ubatch = DECODE_CHUNK
                cparams.n_seq_max = self.n_seq
                cparams.kv_unified = False  # one stream per sequence: attention never looks at the others
                cparams.n_threads = threads
                cparams.n_threads_batch = threads
                cparams.no_perf = True
                cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as chat and export run it
                self.ctx = internals.LlamaContext(model=self.model, params=cparams, verbose=False)
                self._lora = None
                if lora is not None:
                    self._lora = llama_cpp.llama_adapter_lora_init(self.model.model, str(lora).encode("utf-8"))
                    if self._lora is None:
                        raise ValueError(f"cannot load the LoRA adapter {lora}")
                    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._lora)
                    if llama_cpp.llama_set_adapters_lora(self.ctx.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)):
                        raise ValueError(f"cannot apply the LoRA adapter {lora}")
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"{path}: llama.cpp cannot load it: {exc}") from exc
        self.cells = int(llama_cpp.llama_n_ctx(self.ctx.ctx)) // self.n_seq
        self.n_vocab = self.model.n_vocab()
        self._batch = llama_cpp.llama_batch_init(DECODE_CHUNK, 0, self.n_seq)
        self._mem = llama_cpp.llama_get_memory(self.ctx.ctx)
        self._experts: list[Any] = []
        self._using: int | None = None
        self.prefix_tokens_saved = 0
        """prompt tokens not evaluated because a shared prefix stood in for them (over this context's life)"""
        self.keeper = self.n_seq - 1
        self._kept: list[int] = []
        """the tokens the keeper's stream holds"""

    # ---- tokens ------------------------------------------------------------------------------

    def tokenize(self, text: str, bos: bool = True, special: bool = False) -> list[int]:
        return list(self.model.tokenize(text.encode("utf-8"), add_bos=bos, special=special))

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._ll.llama_token_to_piece(self.model.vocab, token, buf, 64, 0, False)
        return buf.raw[: max(n, 0)]

    def _is_end(self, token: int) -> bool:
        return bool(self._ll.llama_vocab_is_eog(self.model.vocab, token))

    # ---- decoding ----------------------------------------------------------------------------

    def _decode(
        self,
        entries: Sequence[tuple[int, int, Sequence[int], bool]],
        on_output: Callable[[int, int], None],
    ) -> None:
        """Decode (token, pos, seq_ids, wants_logits) entries in chunks; on_output(entry_index, row)
        runs for every entry that asked for logits, right after the chunk holding it."""
        b = self._batch
        for start in range(0, len(entries), DECODE_CHUNK):
            chunk = entries[start : start + DECODE_CHUNK]
            wanted = []
            for i, (token, pos, seqs, logits) in enumerate(chunk):
                b.token[i] = token
                b.pos[i] = pos
                b.n_seq_id[i] = len(seqs)
                for k, s in enumerate(seqs):
                    b.seq_id[i][k] = s
                b.logits[i] = logits
                if logits:
                    wanted.append(i)
            b.n_tokens = len(chunk)
            code = self._ll.llama_decode(self.ctx.ctx, b)
            if code != 0:
                self.clear()
                raise UserError(f"llama.cpp could not decode a batch (code {code}): the KV cache is full or broken")
            for i in wanted:
                on_output(start + i, i)

    def clear(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)
        self._kept = []

    def _empty_slots(self) -> None:
        """Every sequence but the keeper emptied (after a call)."""
        if self.keeper == 0:  # one sequence: it is the slot too
            self.clear()
            return
        for seq in range(self.keeper):
            self._ll.llama_memory_seq_rm(self._mem, seq, -1, -1)

    def _keep_prefix(self, prompts: Sequence[Sequence[int]]) -> int:
        """Make the keeper hold the prompts' shared prefix (cut to PREFIX_STEP); its length. Reused
        when the keeper already holds exactly it, else decoded afresh into the emptied stream."""
        shared = common_prefix(prompts) if self.n_seq > 1 else 0
        cut = shared - shared % PREFIX_STEP
        want = list(prompts[0][:cut])
        reused = want == self._kept
        if not reused:
            self._ll.llama_memory_seq_rm(self._mem, self.keeper, -1, -1)
            self._kept = []
            self._decode([(t, p, (self.keeper,), False) for p, t in enumerate(want)], lambda e, row: None)
            self._kept = want
        self.prefix_tokens_saved += cut * (len(prompts) if reused else len(prompts) - 1)
        return cut

    def add_loras(self, paths: Sequence[Path]) -> None:
        """Load LoRA GGUF adapters beside the model, for `use_lora` (a mixture's experts)."""
        for path in paths:
            adapter = self._ll.llama_adapter_lora_init(self.model.model, str(path).encode("utf-8"))
            if adapter is None:
                raise UserError(f"{path}: llama.cpp cannot load this LoRA adapter (another base model?)")
            self._experts.append(adapter)

    def use_lora(self, index: int | None) -> None:
        """Adapter `index` of `add_loras` alone on the context (None: none); the cache is dropped."""
        if index == self._using:
            return
        if index is None:
            code = self._ll.llama_set_adapters_lora(self.ctx.ctx, None, 0, None)
        else:
            chosen = (self._ll.llama_adapter_lora_p_ctypes * 1)(self._experts[index])
            code = self._ll.llama_set_adapters_lora(self.ctx.ctx, chosen, 1, (ctypes.c_float * 1)(1.0))
        if code:
            raise UserError(f"llama.cpp refused to switch to adapter {index} (code {code})")
        self.clear()
        self._using = index

    def _logits(self, row: int) -> np.ndarray:
        ptr = self._ll.llama_get_logits_ith(self.ctx.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _prefill(
        self, prompts: Sequence[Sequence[int]], seqs: Sequence[Sequence[int]], on_last: Callable[[int, int], None]
    ) -> None:
        """Evaluate the prompts into their sequences: the keeper's prefix, then each tail once;
        on_last(i, row) gets the logits row of prompt i's last token. Prompt i's state ends up in every
        sequence of seqs[i] (each sequence has its own cache stream; a copy duplicates a whole stream)."""
        cut = self._keep_prefix(prompts)
        if cut:
            for group in seqs:
                self._ll.llama_memory_seq_cp(self._mem, self.keeper, group[0], -1, -1)
        entries: list[tuple[int, int, Sequence[int], bool]] = []
        last: dict[int, int] = {}
        for i, ids in enumerate(prompts):
            for p in range(cut, len(ids)):
                entries.append((ids[p], p, (seqs[i][0],), p == len(ids) - 1))
            last[len(entries) - 1] = i
        self._decode(entries, lambda e, row: on_last(last[e], row))
        for group in seqs:
            for other in group[1:]:
                self._ll.llama_memory_seq_cp(self._mem, group[0], other, -1, -1)

    # ---- sampling ----------------------------------------------------------------------------

    def _sampler(self, sampling: Sampling, seed: int) -> Any:
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if sampling.temperature <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        else:
            if sampling.top_p < 1.0:
                ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(sampling.top_p, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sampling.temperature))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Watch | None = None,
    ) -> list[Completion]:
        """Completions of token prompts, continuously batched: the last sequence holds the prefix all
        prompts share; the others are slots, and a slot whose sequence ends takes the next prompt
        (a copy of the prefix, then its own tail) in the same decode call that advances the rest."""
        slots = max(1, self.n_seq - 1)
        live = [
            _Live(-1, len(ids), self._sampler(sampling, seed), sampling.max_tokens) for ids, seed in zip(prompts, seeds)
        ]
        queue = list(range(len(prompts)))[::-1]
        free = list(range(slots))[::-1]
        running: list[_Live] = []
        try:
            lcp = self._keep_prefix(prompts) if slots < self.n_seq else 0
            while queue or running:
                if cancel():
                    for s in running:
                        s.finish = "cancelled"
                    break
                entries: list[tuple[int, int, Sequence[int], bool]] = []
                owners: dict[int, _Live] = {}
                for s in running:
                    owners[len(entries)] = s
                    entries.append((s.last, s.pos, (s.slot,), True))
                    s.pos += 1
                while free and queue:
                    i = queue.pop()
                    s = live[i]
                    s.slot = free.pop()
                    self._ll.llama_memory_seq_rm(self._mem, s.slot, -1, -1)
                    if lcp:
                        self._ll.llama_memory_seq_cp(self._mem, self.keeper, s.slot, -1, -1)
                    ids = prompts[i]
                    for p in range(lcp, len(ids)):
                        entries.append((ids[p], p, (s.slot,), p == len(ids) - 1))
                    owners[len(entries) - 1] = s
                    running.append(s)

                def sample(e: int, row: int, owners: dict[int, _Live] = owners) -> None:
                    s = owners[e]  # a row is valid only until the next decode call
                    self._take(s, self._ll.llama_sampler_sample(s.sampler, self.ctx.ctx, row), sampling.stop, watch)

                self._decode(entries, sample)
                for s in [s for s in running if s.finish is not None]:
                    running.remove(s)
                    free.append(s.slot)
        finally:
            self._empty_slots()
            for s in live:
                self._ll.llama_sampler_free(s.sampler)
        started = [(s, p) for s, p in zip(live, prompts) if s.slot >= 0]  # a cancel leaves the rest unstarted
        return [Completion(s.text, s.finish or "cancelled", len(p), s.tokens) for s, p in started]

    def _take(self, s: _Live, token: int, stop: Sequence[str], watch: Watch | None) -> None:
        """Append a sampled token to a sequence and decide whether it ends there."""
        if self._is_end(token):
            s.text, s.finish = s.out.decode("utf-8", errors="ignore"), "stop"
            return
        s.tokens += 1
        s.out += self._piece(token)
        s.last = token
        text = s.out.decode("utf-8", errors="ignore")
        longest = max((len(x) for x in stop), default=0)
        for marker in stop:
            at = text.find(marker, max(0, s.scanned - longest))
            if at >= 0:
                s.text, s.finish = text[:at], "stop"
                return
        s.scanned = len(text)
        if watch is not None:
            cut = watch(text, s.tokens)
            if cut is not None:
                s.text, s.finish = text[:cut], "stop"
                return
        s.text = text
        if s.tokens >= s.budget:
            s.finish = "length"

    # ---- scoring -----------------------------------------------------------------------------

    def label_logprobs(
        self, prompts: Sequence[Sequence[int]], labels: Sequence[Sequence[Sequence[int]]]
    ) -> list[list[float]]:
        """Log-likelihood of each label's tokens after its prompt, for many prompts in one pass.

        Every label continues its prompt in its own sequence: the prompt's tail is decoded once for
        all of its labels, and the shared prefix of all prompts once for everything."""
        slots: list[list[int]] = []
        n = 0
        for options in labels:
            slots.append(list(range(n, n + len(options))))
            n += len(options)
        if n > self.keeper:
            raise ValueError(f"{n} label sequences exceed the context's {self.keeper} (one more holds the prefix)")
        scores = [[0.0] * len(options) for options in labels]
        # (prompt, label, token index whose probability the row gives)
        wants: dict[int, list[tuple[int, int, int]]] = {}

        def read(key: list[tuple[int, int, int]], row: int) -> None:
            logp = _log_softmax(self._logits(row))
            for i, j, k in key:
                scores[i][j] += float(logp[labels[i][j][k]])

        try:
            self._prefill(prompts, slots, lambda i, row: read([(i, j, 0) for j in range(len(labels[i]))], row))
            entries: list[tuple[int, int, Sequence[int], bool]] = []
            for i, options in enumerate(labels):
                for j, toks in enumerate(options):
                    for k in range(len(toks) - 1):
                        wants[len(entries)] = [(i, j, k + 1)]
                        entries.append((toks[k], len(prompts[i]) + k, (slots[i][j],), True))
            self._decode(entries, lambda e, row: read(wants[e], row))
        finally:
            self._empty_slots()
        return scores

    def close(self) -> None:
        if self._batch is not None:
            self._ll.llama_batch_free(self._batch)
            self._batch = None
        if self._lora is not None or self._experts:
            self.ctx.close()
        if self._lora is not None:
            self._ll.llama_adapter_lora_free(self._lora)
            self._lora = None
        for adapter in self._experts:
            self._ll.llama_adapter_lora_free(adapter)
        self._experts = []
        self.ctx.close()
        self.model.close()


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())
