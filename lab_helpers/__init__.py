"""vLLM Lab helpers: everything the notebooks call."""
