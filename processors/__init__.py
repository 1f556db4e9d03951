"""The work of each stage: validation, embedding, Weaviate sink and reader, history, LLM."""
