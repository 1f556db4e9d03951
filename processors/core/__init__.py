"""The pure domain (no I/O, imports neither stages nor adapters): events, rules, records."""
