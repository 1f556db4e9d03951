"""The SDK and its pieces: publishing events, following the acks and the history topics,
reading from Weaviate (``sdk.py`` assembles them). Imports neither the worker nor the
stack tooling."""
