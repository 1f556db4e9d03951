"""`loadgen bench`: benchmarks, each a ratio against a baseline measured in the same run.

- fast: fast-mode drain of N fresh events, against fastembed alone on the same
  texts with the same batch size;
- vector: drain of events carrying precomputed vectors, against a plain batched
  Weaviate import (the python client) of the same objects;
- duplicate: re-published, already indexed events (no-ops), events per second
  (the first pass of the same events is the reference);
- latency: p50/p95/p99 end to end at half the fast drain rate, open loop;
- intelligent: intelligent mode with the fake LLM at 150 ms, against fast mode on
  the same events;
- scaleout: two workers of one group against one;
- tenants, collection, endurance: how cost grows with tenants (shards), with the
  memories stored, and over a long run (:mod:`loadgen.bench.growth`).

Each benchmark starts its own worker (`agentmem worker`, private topic prefix,
collection, state folder and metrics port), drives it through Kafka only, and
afterwards stops it and deletes its topics and Weaviate collection. Absolute
numbers depend on the machine; the ratios are what to compare between runs.

- config.py: what to run and the result keys;
- harness.py: private settings and workers, driving them, cleaning up;
- baselines.py: the naive baselines (fastembed alone, a plain Weaviate import);
- suite.py: the benchmarks and the run that collects them;
- growth.py (endurance), tenants.py, collection.py: the growth benchmarks;
  growth_probes.py, footprint.py (RSS, open files, bytes on disk), stage_times.py
  (a worker's per-stage seconds), vector_events.py (adds with precomputed vectors in
  exact tenant layouts), weaviate_ops.py (bulk load, searches, tenant counts);
- options.py: the command line, ``--quick``;
- render.py, chart.py: the results as Markdown and JSON, the growth chart as PNG.
"""
