"""Shared Kafka settings for both clients: security options, MSK IAM tokens, key partitioning,
timeouts."""

import base64
import time
import urllib.parse

import pytest
from kafka.partitioner.default import murmur2  # the Java client's key hash

from flu_monitor import kafka_client, refdata
from flu_monitor.local.kafka_server import free_port


def test_plaintext_and_tls_settings_for_both_clients():
    conf = kafka_client.client_config("127.0.0.1:1, 127.0.0.1:2", timeout_s=3)
    rd = kafka_client.librdkafka_config(conf)
    assert rd["bootstrap.servers"] == "127.0.0.1:1,127.0.0.1:2"
    assert rd["security.protocol"] == "PLAINTEXT" and rd["socket.timeout.ms"] == 5000
    kp = kafka_client.kafka_python_config(conf)
    assert kp["bootstrap_servers"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert kp["security_protocol"] == "PLAINTEXT" and kp["bootstrap_timeout_ms"] == 3000
    tls = kafka_client.client_config("b-1:9094", security_protocol="ssl", ssl_cafile="/ca.pem")
    rd, kp = kafka_client.librdkafka_config(tls), kafka_client.kafka_python_config(tls)
    assert rd["security.protocol"] == "SSL" and rd["ssl.ca.location"] == "/ca.pem"
    assert kp["security_protocol"] == "SSL" and kp["ssl_cafile"] == "/ca.pem"
    assert "sasl.mechanism" not in rd and "sasl_mechanism" not in kp


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


def decoded(token: str):
    """The signed URL inside an MSK IAM token, parsed, and its query."""
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    return parsed, urllib.parse.parse_qs(parsed.query)


@pytest.fixture
def aws_env_credentials(monkeypatch):
    """botocore's default chain finds these in the environment (no AWS call is made)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_msk_iam_oauth_cb_signs_a_token_with_the_default_credentials(aws_env_credentials):
    conf = kafka_client.client_config("b-1.example:9098", msk_iam=True, region="us-east-1")
    rd = kafka_client.librdkafka_config(conf)
    assert rd["security.protocol"] == "SASL_SSL" and rd["sasl.mechanism"] == "OAUTHBEARER"
    token, expiry = rd["oauth_cb"]("")
    parsed, query = decoded(token)
    assert parsed.netloc == "kafka.us-east-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    # librdkafka wants seconds since the epoch; the signer's tokens last 15 minutes.
    assert 850 < expiry - time.time() <= 900


def test_librdkafka_asks_the_oauth_cb_for_its_token(aws_env_credentials, monkeypatch):
    """The producer built from MSK IAM settings gets its token from the signer (through
    librdkafka's OAUTHBEARER refresh callback) before it tries the brokers."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    signed = []
    original = MSKAuthTokenProvider.generate_auth_token

    def recording(region, *args, **kwargs):
        signed.append(original(region, *args, **kwargs))
        return signed[-1]

    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", recording)
    conf = kafka_client.client_config(
        f"127.0.0.1:{free_port()}", msk_iam=True, region="eu-west-1", timeout_s=0.5
    )
    with pytest.raises(kafka_client.KafkaUnavailable, match=r"\(SASL_SSL\) within 0.5 s"):
        kafka_client.make_producer(conf)  # nothing listens there
    # once by make_producer's own check before the client exists, then by librdkafka
    assert len(signed) >= 2, "librdkafka never called oauth_cb"
    parsed, _ = decoded(signed[0][0])
    assert parsed.netloc == "kafka.eu-west-1.amazonaws.com"


def test_kafka_python_token_provider_for_the_topic_lambda(aws_env_credentials):
    conf = kafka_client.client_config("b-1.example:9098", msk_iam=True, region="us-east-1")
    kp = kafka_client.kafka_python_config(conf)
    assert kp["security_protocol"] == "SASL_SSL" and kp["sasl_mechanism"] == "OAUTHBEARER"
    provider = kp["sasl_oauth_token_provider"]
    token = provider.token()
    parsed, query = decoded(token)
    assert parsed.netloc == "kafka.us-east-1.amazonaws.com"
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert provider.token() == token  # reused until a minute before it expires


@pytest.mark.kafka
def test_keys_land_on_the_java_clients_partitions(kafka_broker, kafka_topic):
    """murmur2 key hashing, as Java producers (datagen) and kafka-python place keys."""
    servers = kafka_broker.bootstrap_servers
    counties = sorted(refdata.counties())
    producer = kafka_client.make_producer(servers)
    for fips in counties:
        producer.send(kafka_topic, fips.encode(), fips.encode())
    producer.close()
    consumer = kafka_client.make_consumer(servers, None, [kafka_topic])
    placed = {}
    while len(placed) < len(counties):
        batch = consumer.poll(timeout_ms=10_000)
        assert batch, f"read {len(placed)} of {len(counties)} records"
        placed.update((r.key, r.partition) for rs in batch.values() for r in rs)
    consumer.close()
    for fips in counties:
        assert placed[fips.encode()] == (murmur2(fips.encode()) & 0x7FFFFFFF) % 3, fips
    assert set(placed.values()) == {0, 1, 2}


def test_unreachable_broker_raises_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(kafka_client.KafkaUnavailable, match="no Kafka broker answered .* 0.5 s"):
        kafka_client.make_producer(
            kafka_client.client_config(f"127.0.0.1:{free_port()}", timeout_s=0.5)
        )
    assert time.monotonic() - started < 20  # bounded by the 0.5 s timeout, room for a busy CPU


def test_msk_iam_without_aws_credentials_fails_in_one_line(monkeypatch):
    """librdkafka waits for the first token when a client is created; without credentials the
    signer fails and the error names that, not a timeout."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    conf = kafka_client.client_config(
        f"127.0.0.1:{free_port()}", msk_iam=True, region="us-east-1", timeout_s=2
    )
    with pytest.raises(kafka_client.KafkaUnavailable, match="MSK IAM token not signed") as raised:
        kafka_client.make_producer(conf)
    assert "are AWS credentials set?" in str(raised.value)
    assert "\n" not in str(raised.value)
