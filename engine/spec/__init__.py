"""The engine's pure layer that the front end may import: stage declarations and their configs,
prompt styles, event and status types. Nothing here touches the store, a model or a file."""
