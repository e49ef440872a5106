"""Command handlers: `f(ctx, args) -> summary | None`, named by the declarations in engine.spec.commands.

Handlers are thin: they read their arguments and call a stage; anything heavy is imported inside
the function so `--help` and the TUI's imports stay fast."""
