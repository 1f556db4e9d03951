"""The local stack without Docker: Kafka, Weaviate and Prometheus built from registries."""
