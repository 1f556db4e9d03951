"""`loadgen report`: throughput, end-to-end latency and dead letters of a run.

Reads the acks on ``memory.indexed`` (``produced_at_ms``, ``indexed_at_ms``,
``outcome``), the dead letters on ``memory.deadletter`` (``stage``, ``reason``) and a
snapshot of the worker's metrics (its /metrics page, or Prometheus), and writes
``report.json``, ``report.md`` and ``report.png`` into an output folder.

- records.py: acks, dead letters and the window of a run (pure);
- metrics.py: the worker's metrics, from a /metrics page or Prometheus;
- build.py: the report document (pure; the statistics are in loadgen/stats.py);
- render.py: its Markdown, chart and files;
- topics.py: reading the acks and dead letters from Kafka.
"""
