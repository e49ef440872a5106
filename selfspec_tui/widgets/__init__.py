"""Reusable widgets (nouns)."""
