"""registry: nodes and profiles, their merge rules and HTTP API (KV `nodes`, `profiles`)."""
