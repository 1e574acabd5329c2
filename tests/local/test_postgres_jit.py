"""The project's own cluster runs every session without JIT (postgres_server.py starts the
postmaster with -c jit=off): a dashboard read, the refresher and the notifier get it without
setting anything. (Here rather than in test_postgres_server.py: it needs no cluster of its own,
the tests' session cluster is a PostgresServer.)"""

import psycopg


def test_every_session_of_the_cluster_runs_without_jit(postgres_server, postgres_db):
    for url in (postgres_server.url, postgres_db):  # the admin database and a new one
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW jit").fetchone() == ("off",)
            source = "SELECT source FROM pg_settings WHERE name = 'jit'"
            assert conn.execute(source).fetchone() == ("command line",)
