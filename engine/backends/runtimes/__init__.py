"""One module per runtime (llama.cpp, transformers), each implementing the Generator and Scorer
protocols of `engine.backends.types`; `engine.backends.registry` picks one by name or format."""
