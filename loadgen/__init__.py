"""Load generation, replay, the fake OpenAI-compatible server, benchmarks and reports."""
