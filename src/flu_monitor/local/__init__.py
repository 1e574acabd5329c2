"""Local runtime: real services started on this machine (Kafka broker, PostgreSQL server)."""
