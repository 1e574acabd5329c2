"""The warehouse: sql/ (Redshift dialect) applied on Redshift and, translated, on PostgreSQL.

- sqlscript: the shared SQL core (stdlib only; also bundled into the sql_runner Lambda)
- translate: Redshift -> PostgreSQL, in stages: parse -> dialect -> speed -> plan (one module each)
- postgres: apply / refresh / insert_raw / load-jsonl against PostgreSQL (the local runtime)
- cli: the `flu-monitor db` command group

Nothing heavy is imported here, so `from flu_monitor.warehouse import sqlscript` stays cheap.
"""
