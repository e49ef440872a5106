"""The Self-MoE mixture in transformers, on a tiny random Llama with two LoRA experts made by peft:
a forced expert equals that expert merged by peft, routing tallies add up, router training moves
only the router, and a router checkpoint round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backends import moe
from engine.errors import UserError
from tests.helpers import build_tiny_llama


def _expert(base: Path, out: Path, seed: int, rank: int = 4) -> Path:
    """A peft LoRA adapter with non-zero B (as if trained), saved to `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(seed)
    peft_model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("moe")
    base = build_tiny_llama(root / "base")
    return base, [_expert(base, root / "e0", 1), _expert(base, root / "e1", 2, rank=2)]


def _load(base: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base).eval()


def _experts(paths: list[Path]) -> list[moe.ExpertWeights]:
    return [moe.read_expert(f"e{i}", p) for i, p in enumerate(paths)]


def test_a_forced_expert_equals_that_adapter_merged_by_peft(tiny) -> None:
    import torch
    from peft import PeftModel

    base, experts = tiny
    ids = torch.tensor([[5, 9, 23, 41, 7, 3]])
    mixture = moe.build_mixture(_load(base), _experts(experts), top_k=1)
    for i, folder in enumerate(experts):
        mixture.route.forced = i
        with torch.no_grad():
            ours = mixture(input_ids=ids).logits
            theirs = PeftModel.from_pretrained(_load(base), folder).merge_and_unload()(input_ids=ids).logits
        assert torch.allclose(ours, theirs, atol=1e-4), (i, (ours - theirs).abs().max())
    mixture.route.forced = None
    with torch.no_grad():
        plain = _load(base)(input_ids=ids).logits
        routed = mixture(input_ids=ids).logits
    assert not torch.allclose(routed, plain, atol=1e-4)  # the router's experts do change the output


def test_routing_tallies_count_every_real_token_in_every_layer(tiny) -> None:
    import torch

    base, experts = tiny
    mixture = moe.build_mixture(_load(base), _experts(experts), top_k=1)
    ids = torch.tensor([[5, 9, 23, 41], [7, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    tally = moe.route_counts(mixture, ids, mask)
    assert sum(tally) == 6 * mixture.route.layers == 12
    mixture.route.forced = 1
    assert moe.route_counts(mixture, ids, mask) == [0, 12]
    assert moe.shares([0, 12]) == [0.0, 1.0]


def test_router_training_moves_only_the_router_and_its_checkpoint_round_trips(tiny, tmp_path) -> None:
    import torch
    from transformers import AutoTokenizer

    from engine.backends.encoding import TrainExample, encode
    from engine.spec.mixture import RouterConfig

    base, experts = tiny
    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    rows = [TrainExample(f"say {w}", "", f"{w} {w} {w}") for w in ("alpha", "beta", "gamma", "delta")]
    enc, _ = encode(tok, rows, "alpaca", 128)
    cfg = RouterConfig(batch_size=2, micro_batch=2, epochs=2, learning_rate=5e-2)
    info = {"device": "cpu", "four_bit": False, "dtype": "float32"}
    model = _load(base)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    run = moe.RouterRun(model, tok, cfg, (enc, []), info, 1, _experts(experts))
    assert [n for n, _ in run.trainable] == ["router.weight"]
    before = run.model.router.weight.detach().clone()
    losses = [run.step()["loss"] for _ in range(run.total_steps)]
    assert len(losses) == 4 and all(loss == loss for loss in losses)
    assert not torch.allclose(before, run.model.router.weight)
    for name, p in run.model.model.named_parameters():
        assert torch.equal(p, frozen[name.replace(".base.", ".")]), name  # the base never moves
    saved = run.save_checkpoint(tmp_path / "ck", keep=1)
    again = moe.RouterRun(_load(base), tok, cfg, (enc, []), info, 1, _experts(experts))
    again.load_checkpoint(saved)
    assert torch.equal(again.model.router.weight, run.model.router.weight) and again.pos.step == 4


def test_broken_or_foreign_experts_are_refused_with_the_file_named(tiny, tmp_path) -> None:
    base, experts = tiny
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="adapter_config.json is missing"):
        moe.read_expert("x", empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text((experts[0] / "adapter_config.json").read_text())
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="cannot read"):
        moe.read_expert("x", broken)
    other = build_tiny_llama(tmp_path / "wide", hidden=64)
    with pytest.raises(UserError, match="shapes"):
        moe.build_mixture(_load(other), _experts(experts), top_k=1)
