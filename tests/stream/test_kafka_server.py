"""The local Kafka broker helper: real KRaft broker, topics, restart without loss, clean stop."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flu_monitor import kafka_client
from flu_monitor.local.kafka_server import KafkaError, KafkaServer

pytestmark = pytest.mark.kafka


def produce(servers, topic, values, key=b"k"):
    producer = kafka_client.make_producer(servers)
    for value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def consume_all(servers, topic, expected, timeout_s=20):
    consumer = kafka_client.make_consumer(servers, group_id=None, topics=[topic])
    values = []
    try:
        for batch in iter(lambda: consumer.poll(timeout_ms=timeout_s * 1000), {}):
            values += [r.value for records in batch.values() for r in records]
            if len(values) >= expected:
                break
    finally:
        consumer.close()
    return values


def test_session_broker_round_trip(kafka_broker, kafka_topic):
    assert kafka_broker.running and kafka_broker.bootstrap_servers.startswith("127.0.0.1:")
    produce(kafka_broker.bootstrap_servers, kafka_topic, [b"a", b"b", b"c"])
    assert consume_all(kafka_broker.bootstrap_servers, kafka_topic, 3) == [b"a", b"b", b"c"]


def test_create_topic_is_idempotent_but_refuses_another_partition_count(kafka_broker):
    kafka_broker.create_topic("idempotent-topic", partitions=4)
    kafka_broker.create_topic("idempotent-topic", partitions=4)
    with pytest.raises(ValueError, match="exists with 4 partitions, not 2"):
        kafka_broker.create_topic("idempotent-topic", partitions=2)


def test_topics_are_not_auto_created_as_on_msk(kafka_broker):
    admin = kafka_client.make_admin(kafka_broker.bootstrap_servers)
    assert kafka_client.partition_count(admin, "never-created") is None
    admin.close()


def test_restart_keeps_port_and_data_kill_loses_nothing_and_stop_is_clean(kafka_server_factory):
    server = kafka_server_factory()
    server.create_topic("durable", partitions=2)
    produce(server.bootstrap_servers, "durable", [b"1", b"2"])
    port, pid = server.port, server.pid

    server.restart()
    assert server.port == port and server.pid != pid
    produce(server.bootstrap_servers, "durable", [b"3"])

    server.kill()  # SIGKILL: acknowledged (acks=all) records must survive the crash
    assert not server.running
    again = KafkaServer(server.state_dir)  # a new helper on the same state dir finds the port
    assert again.port == port
    again.start()
    try:
        assert sorted(consume_all(again.bootstrap_servers, "durable", 3)) == [b"1", b"2", b"3"]
    finally:
        pid = again.pid
        again.stop()
    # A clean stop leaves no process, no pid file and no listener.
    assert not again.running and not os.path.exists(f"/proc/{pid}")
    assert not again.pid_file.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(KafkaError, match=f"port {port} .* already in use"):
            KafkaServer(tmp_path, port=port).start()


def test_bad_setting_is_named(tmp_path, monkeypatch):
    from flu_monitor.local import kafka_server

    monkeypatch.setitem(kafka_server.SERVER_DEFAULTS, "num.io.threads", "zero")
    with pytest.raises(KafkaError, match=r"Invalid value zero for configuration num\.io\.threads"):
        KafkaServer(tmp_path).start(timeout=60)


def test_broker_that_dies_on_start_fails_fast_with_the_log_tail(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("version=1\nnode.id=7\n")
    with pytest.raises(KafkaError, match=r"(?s)Kafka exited with code [1-9].*--- .*kafka\.log"):
        KafkaServer(tmp_path).start(timeout=60)


def test_tls_listener_serves_ssl_clients(tmp_path):
    """The simulator's --security-protocol SSL path against a real TLS listener."""
    import trustme
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain, key_file, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.write_bytes(pkcs8)
    ca.cert_pem.write_to_path(str(ca_file))
    server = KafkaServer(tmp_path / "kafka", tls=(chain, key_file))
    with socket.socket() as busy:  # another process takes a picked port before the start
        busy.bind(("127.0.0.1", server.ssl_port))
        busy.listen()
        taken = server.ssl_port
        server.start()
    assert server.ssl_port != taken  # picked again instead of failing
    with server:
        server.create_topic("tls", partitions=1)
        conf = kafka_client.client_config(
            server.ssl_bootstrap_servers, security_protocol="SSL", ssl_cafile=str(ca_file)
        )
        produce(conf, "tls", [b"over tls"])
        assert consume_all(conf, "tls", 1) == [b"over tls"]
        untrusted = kafka_client.client_config(
            server.ssl_bootstrap_servers, security_protocol="SSL", timeout_s=3
        )
        with pytest.raises(kafka_client.KafkaUnavailable):
            kafka_client.make_producer(untrusted)  # the system trust store does not know this CA


def test_storage_format_accepts_a_cluster_id_starting_with_a_dash(tmp_path, monkeypatch):
    # 1 random id in 64 starts with "-"; the storage tool must not read it as an option.
    import uuid

    from flu_monitor.local import kafka_server

    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))
    monkeypatch.setattr(kafka_server.uuid, "uuid4", lambda: dash_first)
    server = KafkaServer(tmp_path)
    server._write_config()
    server._format_storage(kafka_server.kafka_classpath())
    meta = (tmp_path / "data" / "meta.properties").read_text()
    assert "cluster.id=-" in meta


STARTER = """
import sys, time
from flu_monitor.local.kafka_server import KafkaServer
server = KafkaServer(sys.argv[1]).start()
print(server.pid, flush=True)
time.sleep(600)
"""


def test_the_broker_stops_when_its_starter_is_killed(tmp_path):
    """kill -9 of the process that started the broker: the kernel sends the JVM SIGTERM."""
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "kafka")], stdout=subprocess.PIPE, text=True
    )
    broker = int(starter.stdout.readline())
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 90
    while Path(f"/proc/{broker}").exists():
        assert time.monotonic() < deadline, "the broker outlived the process that started it"
        time.sleep(0.2)
