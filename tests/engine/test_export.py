"""Export: converter setup, clear refusals, corrupt GGUF files, and the real merge -> GGUF -> parity path."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.stages import converter
from engine.store import adapters, projects, review
from engine.store.review import Filter
from tests.helpers import ROOT, build_tiny_llama, fill, run_engine


def _sdist(path: Path, version: str, with_converter: bool = True) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        files = {"vendor/llama.cpp/gguf-py/gguf/__init__.py": b"", "vendor/llama.cpp/README.md": b"not wanted"}
        if with_converter:
            files["vendor/llama.cpp/convert_hf_to_gguf.py"] = b"print('convert')"
            files["vendor/llama.cpp/conversion/__init__.py"] = b""
        for name, body in files.items():
            info = tarfile.TarInfo(f"llama_cpp_python-{version}/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def test_converter_setup_unpacks_only_the_converters(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    version = converter.llama_cpp_version()
    with pytest.raises(UserError, match="tools setup"):
        converter.find()
    with pytest.raises(UserError, match="no vendor/llama.cpp/convert_hf_to_gguf.py"):
        converter.setup(_sdist(tmp_path / "bad.tar.gz", version, with_converter=False))
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(UserError, match="cannot unpack"):
        converter.setup(tmp_path / "junk.tar.gz")
    out = converter.setup(_sdist(tmp_path / "good.tar.gz", version))
    folder = converter.find()
    assert out["fetched"] and sorted(p.name for p in folder.iterdir()) == [
        "READY",
        "conversion",
        "convert_hf_to_gguf.py",
        "gguf-py",
    ]
    assert converter.setup()["fetched"] is False  # already there: no download


def test_corrupt_and_truncated_gguf_files_are_clear_errors(tmp_path):
    from engine.backends.gguf_export import open_gguf
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + os.urandom(200))
    with pytest.raises(UserError, match="junk.gguf"):
        open_gguf(junk, 1)
    real = builtin_path(DEFAULT_MODEL)
    cut = tmp_path / "cut.gguf"
    with real.open("rb") as fh:
        cut.write_bytes(fh.read(3_000_000))
    with pytest.raises(UserError, match="cut.gguf"):
        open_gguf(cut, 1)


def _trained_project(db, model_folder: Path, name: str, steps: int = 1) -> None:
    from engine.stages.models import register

    register(db, model_folder, f"{name}-model")
    p = projects.create(db, name, "biomedicine", f"{name}-model", {})
    ids = fill(db, p, 8, seed=2)
    review.set_status(db, p, Filter(ids=tuple(ids)), "accepted", "x")
    r = run_engine(
        "train", "--project", name, "--batch-size", "2", "--micro-batch", "1", "--max-steps", str(steps), "--lr", "1e-3"
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_unknown_tokenizer_pre_processing_is_refused_clearly(db, tmp_path):
    _trained_project(db, build_tiny_llama(tmp_path / "bpe-tiny"), "odd")
    r = run_engine("export", "--project", "odd", timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "does not know this tokenizer's pre-processing" in r.stderr
    ex = adapters.exports_for(db, adapters.current(db, projects.get(db, "odd")))[-1]
    assert ex.status == "failed" and not list(Path(ex.path).glob("*.gguf"))  # nothing that looks finished


@pytest.fixture(scope="module")
def smol_tiny(tmp_path_factory) -> Path:
    """A tiny random Llama with SmolLM2's real tokenizer (GPT-2 BPE, known to llama.cpp)."""
    from transformers import AutoTokenizer

    from engine.stages.models import DEFAULT_MODEL, builtin_path

    gguf = builtin_path(DEFAULT_MODEL)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return build_tiny_llama(tmp_path_factory.mktemp("m") / "smol-tiny", tokenizer=tok, hidden=64)


@pytest.mark.slow
def test_sentencepiece_family_gemma3_exports_with_parity(db, tmp_path):
    """The second tokenizer family: Gemma-3's SentencePiece vocabulary (262k pieces, BOS added)."""
    import llama_cpp

    from tests.helpers import build_tiny_gemma3, gemma3_tokenizer

    _trained_project(db, build_tiny_gemma3(tmp_path / "gemma-tiny", gemma3_tokenizer()), "gem", steps=2)
    r = run_engine("export", "--project", "gem", "--quant", "q8_0", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "llama_" not in r.stderr  # llama.cpp's chatter goes to the log
    ex = adapters.exports_for(db, adapters.current(db, projects.get(db, "gem")))[-1]
    assert ex.status == "done" and ex.parity["positions"] > 100
    assert ex.parity["f16"]["tokenization_equal"] == 1.0 and ex.parity["q8_0"]["tokenization_equal"] == 1.0
    assert ex.parity["f16"]["top1_agreement"] >= 0.95
    folder = Path(ex.path)
    llm = llama_cpp.Llama(str(folder / "model-q8_0.gguf"), lora_path=None, n_ctx=128, n_threads=1, verbose=False)
    try:
        assert llm.metadata.get("general.architecture") == "gemma3"
        assert llm.tokenize(b"Sepsis needs fluids.", add_bos=False) == gemma3_ids("Sepsis needs fluids.")
        out = llm.create_completion("### Instruction:\nWhat is sepsis?\n\n### Response:\n", max_tokens=4)
        assert out["choices"][0]["finish_reason"] in ("length", "stop")
    finally:
        llm.close()


def gemma3_ids(text: str) -> list[int]:
    from tests.helpers import gemma3_tokenizer

    return list(gemma3_tokenizer()(text, add_special_tokens=False)["input_ids"])


@pytest.mark.slow
def test_tiny_model_merge_gguf_quantize_load_and_chat(db, smol_tiny):
    import llama_cpp

    _trained_project(db, smol_tiny, "tiny", steps=2)
    r = run_engine("export", "--project", "tiny", "--quant", "q8_0,q4_k_m", timeout=600)
    assert r.returncode == 0, r.stderr
    folder = Path(adapters.exports_for(db, adapters.current(db, projects.get(db, "tiny")))[-1].path)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "Modelfile",
        "adapter-f16.gguf",
        "merged",
        "model-f16.gguf",
        "model-q4_k_m.gguf",
        "model-q8_0.gguf",
    ]
    assert "parity_f16: tokens 100%, top-1 " in r.stdout, r.stdout
    assert "parity: " in r.stderr and "texts scored" in r.stderr and "model q4_k_m" in r.stderr  # its own bar
    assert f"ollama: ollama create expert-1 -f {folder / 'Modelfile'}" in r.stdout  # how to serve it
    ex = adapters.exports_for(db, adapters.current(db, projects.get(db, "tiny")))[-1]
    assert ex.status == "done" and ex.parity["f16"]["top1_agreement"] >= 0.95
    assert ex.parity["q8_0"]["tokenization_equal"] == 1.0
    llm = llama_cpp.Llama(str(folder / "model-q8_0.gguf"), n_ctx=256, n_threads=1, verbose=False)
    try:
        meta = llm.metadata
        assert meta.get("tokenizer.chat_template") and meta.get("tokenizer.ggml.eos_token_id") == "2"
        reply = llm.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=8, temperature=0)
        assert reply["choices"][0]["message"]["role"] == "assistant"
    finally:
        llm.close()
    again = run_engine("export", "--project", "tiny", "--quant", "q8_0,q4_k_m", timeout=600)
    assert again.returncode == 0 and "merging" not in again.stderr and "converting" not in again.stderr
    # the merged model through transformers and its f16 GGUF through llama.cpp score alike
    scored = run_engine(
        "eval", "run", "--project", "tiny", "--model", "hf:expert-1", "--model", "expert-1:f16",
        "--no-seeds", "--limit", "8", timeout=600,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    from engine.store import evals

    [ev] = evals.list_for(db, projects.get(db, "tiny"))
    by_item: dict[str, dict[str, str]] = {}
    for s in evals.scores(db, ev.id):
        if "content-free" not in s.dataset:  # the calibration inputs ("N/A", "", "[MASK]") are scored too
            by_item.setdefault(s.item_key, {})[s.model] = s.prediction
    assert len(by_item) == 8 and sum(v["hf:expert-1"] == v["expert-1:f16"] for v in by_item.values()) >= 7
    # chat from the terminal with two exports side by side; the conversation is stored and listed
    chat = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "--format",
            "text",
            "chat",
            "--project",
            "tiny",
            "--model",
            "expert-1",
            "--model",
            "expert-1:f16",
            "--max-tokens",
            "6",
            "--temperature",
            "0",
        ],
        input="hello there\n/exit\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert chat.returncode == 0, chat.stderr
    assert "expert-1> " in chat.stdout and "expert-1:f16> " in chat.stdout and "tok/s" in chat.stderr
    from engine.store import chats

    [conv] = chats.list_for(db, projects.get(db, "tiny"))
    msgs = chats.messages(db, conv.id)
    assert [(m.pane, m.role) for m in msgs] == [(-1, "user"), (0, "assistant"), (1, "assistant")]
    assert msgs[1].model == "expert-1:q8_0" and msgs[2].model == "expert-1:f16" and msgs[1].tokens > 0
    listed = run_engine("chat", "--project", "tiny", "--list")
    assert "base+" not in listed.stdout and "expert-1:q4_k_m" in listed.stdout and "hello there" in listed.stdout
    bad = run_engine("chat", "--project", "tiny", "--model", "nope")
    assert bad.returncode == 2 and "no chat model 'nope'" in bad.stderr
    # the JSON loop the TUI will drive: a streamed side-by-side turn, then a stop mid-reply
    import json

    serve = subprocess.Popen(
        [sys.executable, "-m", "engine", "--format", "json", "chat", "--project", "tiny", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert serve.stdin and serve.stdout

    def events_until(kind: str) -> list[dict]:
        seen = []
        for line in serve.stdout:
            event = json.loads(line)
            seen.append(event)
            if event.get("event") in (kind, "failed"):
                return seen
        return seen

    ready = events_until("ready")[-1]
    assert {m["spec"] for m in ready["models"]} >= {"expert-1:q8_0", "expert-1:f16"}
    send = {"op": "send", "models": ["expert-1:q8_0", "expert-1:f16"], "text": "hi", "max_tokens": 5, "temperature": 0}
    serve.stdin.write(json.dumps(send) + "\n")
    serve.stdin.flush()
    seen = events_until("turn")
    tokens = [e for e in seen if e["event"] == "token"]
    assert {e["pane"] for e in tokens} == {0, 1} and seen[-1]["event"] == "turn"
    conv_id = next(e["id"] for e in seen if e["event"] == "conversation")
    long = {"op": "send", "conversation": conv_id, "text": "and more", "max_tokens": 400, "temperature": 1.0}
    serve.stdin.write(json.dumps(long) + "\n")
    serve.stdin.flush()
    for line in serve.stdout:  # stop as soon as the first token arrives
        if json.loads(line).get("event") == "token":
            break
    serve.stdin.write(json.dumps({"op": "stop"}) + "\n")
    serve.stdin.flush()
    turn = events_until("turn")[-1]
    assert turn["event"] == "turn" and all(r["stopped"] for r in turn["replies"])
    assert all(r["tokens"] < 400 for r in turn["replies"])
    serve.stdin.close()
    assert serve.wait(60) == 0
    assert len(chats.messages(db, conv_id)) == 6


@pytest.mark.slow
def test_embedded_default_export_parity_and_kill_9_resume(db, home):
    import llama_cpp

    from engine.stages.models import DEFAULT_MODEL, builtin_path

    p = projects.create(db, "smol", "biomedicine", DEFAULT_MODEL, {})
    ids = fill(db, p, 6, seed=4)
    review.set_status(db, p, Filter(ids=tuple(ids)), "accepted", "x")
    r = run_engine(
        "train", "--project", "smol", "--batch-size", "2", "--micro-batch", "1", "--max-steps", "1", timeout=600
    )
    assert r.returncode == 0, r.stderr
    args = [sys.executable, "-m", "engine", "--format", "text", "export", "--project", "smol", "--quant", "q8_0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = home / "projects" / "smol" / "exports" / "expert-1"
    deadline = time.monotonic() + 300
    while not (folder / "model-f16.gguf.partial").exists():  # killed while converting
        assert proc.poll() is None and time.monotonic() < deadline, "export ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (folder / "model-f16.gguf").exists()  # a half-written file never looks finished
    r = run_engine("export", "--project", "smol", "--quant", "q8_0", timeout=900)
    assert r.returncode == 0, r.stderr
    assert "merging" not in r.stderr  # the merged folder survived and was reused
    ex = adapters.exports_for(db, adapters.current(db, p))[-1]
    f16, q8 = ex.parity["f16"], ex.parity["q8_0"]
    assert f16["tokenization_equal"] == 1.0 and f16["top1_agreement"] >= 0.95
    assert q8["tokenization_equal"] == 1.0 and q8["top1_agreement"] >= 0.85
    llm = llama_cpp.Llama(
        str(builtin_path(DEFAULT_MODEL)),
        lora_path=str(folder / "adapter-f16.gguf"),
        n_ctx=256,
        n_threads=1,
        verbose=False,
    )
    try:
        text = llm("### Instruction:\nName a statin.\n\n### Response:\n", max_tokens=8, temperature=0)
        assert text["choices"][0]["text"].strip()
    finally:
        llm.close()
