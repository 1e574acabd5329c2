"""The warehouse: sql/ (Redshift dialect) applied on Redshift and, translated, on PostgreSQL.

- sqlscript: the shared SQL core (stdlib only; also bundled into the sql_runner Lambda)
- translate: Redshift -> PostgreSQL translation (sqlglot + rules) and the local refresh plan
- local: apply / refresh / insert_raw / load-jsonl against PostgreSQL
- cli: the `flu-monitor db` command group

Nothing heavy is imported here, so `from flu_monitor.warehouse import sqlscript` stays cheap.
"""
