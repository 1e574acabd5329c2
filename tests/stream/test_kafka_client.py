"""Shared kafka-python settings: security options, MSK IAM tokens, partitioning, timeouts."""

import base64
import time
import urllib.parse

import pytest
from kafka.partitioner.default import DefaultPartitioner

from flu_monitor import kafka_client, refdata
from flu_monitor.local.kafka_server import free_port


def test_plaintext_and_tls_settings():
    conf = kafka_client.client_config("127.0.0.1:1, 127.0.0.1:2", timeout_s=3)
    assert conf["bootstrap_servers"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert conf["security_protocol"] == "PLAINTEXT" and conf["bootstrap_timeout_ms"] == 3000
    tls = kafka_client.client_config("b-1:9094", security_protocol="ssl", ssl_cafile="/ca.pem")
    assert tls["security_protocol"] == "SSL" and tls["ssl_cafile"] == "/ca.pem"
    assert "sasl_mechanism" not in tls


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bootstrap_servers": " , "}, "bootstrap_servers"),
        ({"bootstrap_servers": "x:1", "security_protocol": "SASL_PLAINTEXT"}, "security_protocol"),
        ({"bootstrap_servers": "x:1", "msk_iam": True}, "region"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        kafka_client.client_config(**kwargs)


def test_msk_iam_signs_a_token_with_the_default_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    conf = kafka_client.client_config("b-1.example:9098", msk_iam=True, region="us-east-1")
    assert conf["security_protocol"] == "SASL_SSL" and conf["sasl_mechanism"] == "OAUTHBEARER"
    provider = conf["sasl_oauth_token_provider"]
    token = provider.token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.netloc == "kafka.us-east-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert provider.token() == token  # reused until a minute before it expires


class SixPartitions:
    """The three cluster-metadata calls a partitioner makes, for one topic of 6 partitions."""

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(range(6)) if topic == "t" else None

    available_partitions_for_topic = partitions_for_topic


def test_caching_partitioner_matches_the_default_partitioner():
    cluster = SixPartitions()
    cached, default = kafka_client.caching_key_partitioner(), DefaultPartitioner()
    for fips in refdata.counties():
        key = fips.encode()
        expected = default.partition("t", fips, key, None, None, cluster)
        assert cached.partition("t", fips, key, None, None, cluster) == expected
        assert cached.partition("t", fips, key, None, None, cluster) == expected  # from cache


def test_unreachable_broker_raises_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(kafka_client.KafkaUnavailable, match="no Kafka broker answered"):
        kafka_client.make_producer(
            kafka_client.client_config(f"127.0.0.1:{free_port()}", timeout_s=2)
        )
    assert time.monotonic() - started < 20  # bounded by the 2 s timeout, with room for a busy CPU
