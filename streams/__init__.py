"""AgentMem Stream: faust app, topics, tables, agent wiring, event schema, settings, SDK."""
