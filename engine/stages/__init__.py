"""One module per pipeline stage. Each takes a Context and returns a summary dict."""
