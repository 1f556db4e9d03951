"""The index and enrich stages over the ports, with their shared skeleton; no adapters."""
