"""Weaviate adapters (schema, the stages' writes and reads, the API's reads); not pure."""
