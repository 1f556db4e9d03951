"""The worker service: the faust app, its agents and their shared clients
(``worker.py``, ``lifecycle.py``), local state, consumer lag, health endpoint, requeue."""
