"""The only modules that import heavy ML libraries, and only inside functions."""
