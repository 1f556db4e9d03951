"""The ports implemented on Kafka, Weaviate, fastembed and the LLM endpoint; not pure."""
