"""`loadgen replay FILE`: publish JSONL events to ``memory.events`` on an open-loop schedule.

Every event gets a send time computed from the start (fixed rate, recorded
``occurred_at`` gaps, or all at once), independent of how long earlier sends
took: a slow system shows up as latency, never as a lower offered rate. Sends are
not awaited one by one; at most ``max_inflight`` broker acknowledgements are
outstanding, and if the producer itself falls behind its schedule the result
says by how much. Paced records carry their scheduled send time as the Kafka
timestamp, so ``indexed_at_ms - produced_at_ms`` in the acks includes any delay of
the producer (no coordinated omission).

- records.py: parsing lines and the schedule (pure);
- sender.py: the open-loop sender with an injected send, and its lateness (pure
  but for the clock, which is injectable);
- run.py: one replay against Kafka, following the acks, with a progress bar.
"""
