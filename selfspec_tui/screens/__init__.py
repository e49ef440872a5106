"""One screen per file; modals live in modals.py."""
