"""The HTTP API: the app factory (``app.py``), routes, dependencies and auth, error
answers, and the request and response models. Serves from the SDK."""
