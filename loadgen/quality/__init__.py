"""`loadgen quality`: how well the configured LLM enriches memories, on a labeled set."""
