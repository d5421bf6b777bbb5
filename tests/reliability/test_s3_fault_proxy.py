"""The S3 fault proxy (tests/harness/s3_faults.py) against a real moto server: each fault kind is injected and
counted, a seeded plan injects the same faults twice, and large bodies go through byte for byte."""

from __future__ import annotations

import hashlib
import os

import pytest

pytestmark = pytest.mark.integration  # starts moto and the proxy as processes of their own


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory):
    from harness.services import S3FaultProxy, S3Server

    logs = tmp_path_factory.mktemp("s3-proxy-logs")
    with S3Server(logs) as s3, S3FaultProxy(logs, s3) as proxy:
        s3.client().create_bucket(Bucket="proxied")
        yield s3, proxy


@pytest.fixture
def proxy(s3_stack):
    _, proxy = s3_stack
    proxy.clear_faults()
    proxy.reset_stats()
    yield proxy
    proxy.clear_faults()


def no_retry_client(proxy):
    """A client that reports the first failure as it is: botocore retries nothing, and fails fast."""
    return proxy.client(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("slowdown", 503, "SlowDown"), ("internal", 500, "InternalError")]
)
def test_an_error_answer_is_s3s_and_nothing_reaches_the_store(proxy, s3_stack, kind, status, code):
    from botocore.exceptions import ClientError

    proxy.set_faults(1, [{"kind": kind, "probability": 1.0, "operations": ["PutObject"]}])
    with pytest.raises(ClientError) as raised:
        no_retry_client(proxy).put_object(Bucket="proxied", Key=f"error-{kind}", Body=b"x")

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert raised.value.response["Error"]["Code"] == code
    s3, _ = s3_stack
    assert "Contents" not in s3.client().list_objects_v2(Bucket="proxied", Prefix=f"error-{kind}")
    stats = proxy.stats()
    assert stats["faults"] == {kind: 1} and stats["faults_by_operation"] == {"PutObject": {kind: 1}}


def test_a_reset_before_forwarding_is_a_connection_error_and_nothing_is_written(proxy, s3_stack):
    from botocore.exceptions import ConnectionClosedError

    proxy.set_faults(1, [{"kind": "reset", "probability": 1.0, "operations": ["PutObject"]}])
    with pytest.raises(ConnectionClosedError) as raised:
        no_retry_client(proxy).put_object(Bucket="proxied", Key="reset", Body=b"x")

    assert "Connection reset by peer" in repr(raised.value.kwargs["error"])  # a TCP RST, not a clean close

    s3, _ = s3_stack
    assert "Contents" not in s3.client().list_objects_v2(Bucket="proxied", Prefix="reset")
    assert proxy.stats()["faults"] == {"reset": 1}


def test_a_reset_after_forwarding_loses_the_answer_but_the_write_took_effect(proxy, s3_stack):
    from botocore.exceptions import ConnectionClosedError

    proxy.set_faults(1, [{"kind": "reset_after", "probability": 1.0, "operations": ["PutObject"]}])
    with pytest.raises(ConnectionClosedError) as raised:
        no_retry_client(proxy).put_object(Bucket="proxied", Key="reset-after", Body=b"written")

    assert "Connection reset by peer" in repr(raised.value.kwargs["error"])

    s3, _ = s3_stack
    assert s3.client().get_object(Bucket="proxied", Key="reset-after")["Body"].read() == b"written"
    assert proxy.stats()["faults_by_operation"] == {"PutObject": {"reset_after": 1}}


def test_a_slow_answer_arrives_after_the_delay(proxy):
    import time

    proxy.set_faults(1, [{"kind": "slow", "probability": 1.0, "delay": 1.0, "operations": ["HeadBucket"]}])
    client = no_retry_client(proxy)
    started = time.monotonic()
    client.head_bucket(Bucket="proxied")
    assert time.monotonic() - started >= 1.0
    client.put_object(Bucket="proxied", Key="fast", Body=b"x")  # another operation: not slowed, not counted
    stats = proxy.stats()
    assert stats["faults"] == {"slow": 1}
    assert stats["by_operation"] == {"HeadBucket": 1, "PutObject": 1}


def test_botocore_retries_every_kind_until_it_gets_through(proxy):
    """A user's default client (botocore's legacy mode, 4 retries) survives every kind at a 30% share."""
    rules = [{"kind": kind, "probability": 0.06} for kind in ("slowdown", "internal", "reset", "reset_after")]
    proxy.set_faults(5, [*rules, {"kind": "slow", "probability": 0.06, "delay": 0.05}])
    client = proxy.client()
    for n in range(60):
        client.put_object(Bucket="proxied", Key=f"retried/{n}", Body=b"%d" % n)
    assert all(client.get_object(Bucket="proxied", Key=f"retried/{n}")["Body"].read() == b"%d" % n for n in range(60))
    stats = proxy.stats()
    faults = stats["faults"]
    assert set(faults) == {"slowdown", "internal", "reset", "reset_after", "slow"}, faults
    # Every failed request was sent again (a slow answer is no failure): the proxy counts those as retries.
    assert stats["retried"] == sum(faults.values()) - faults["slow"]


def test_one_seed_and_one_request_order_give_the_same_faults(proxy):
    from botocore.exceptions import BotoCoreError, ClientError

    def outcomes() -> tuple[list[str], dict]:
        proxy.set_faults(42, [{"kind": "slowdown", "probability": 0.2}, {"kind": "internal", "probability": 0.2}])
        proxy.reset_stats()
        client, seen = no_retry_client(proxy), []
        for n in range(40):
            try:
                client.put_object(Bucket="proxied", Key=f"seeded/{n}", Body=b"x")
                seen.append("ok")
            except (ClientError, BotoCoreError) as error:
                seen.append(getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__))
        return seen, proxy.stats()

    first, second = outcomes(), outcomes()
    assert first == second
    assert {"ok", "SlowDown", "InternalError"} <= set(first[0])


def test_a_30_mb_object_and_a_multipart_upload_round_trip_byte_for_byte(proxy):
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(30 * 2**20)
    client = proxy.client()
    client.put_object(Bucket="proxied", Key="big", Body=data)
    assert hashlib.sha256(client.get_object(Bucket="proxied", Key="big")["Body"].read()).digest() == (
        hashlib.sha256(data).digest()
    )
    # boto3's managed transfer: 5 MB parts (and aws-chunked bodies with trailing checksums), 4 threads.
    import io

    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    client.upload_fileobj(io.BytesIO(data), "proxied", "big-multipart", Config=config)
    out = io.BytesIO()
    client.download_fileobj("proxied", "big-multipart", out, Config=config)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(data).digest()
    by_operation = proxy.stats()["by_operation"]
    assert by_operation["UploadPart"] == 6 and by_operation["CompleteMultipartUpload"] == 1
    assert by_operation["CreateMultipartUpload"] == 1


def test_the_admin_api_refuses_an_unknown_kind(proxy):
    import httpx

    response = httpx.put(proxy.admin_url + "/faults", json={"seed": 1, "rules": [{"kind": "boom", "probability": 1}]})
    assert response.status_code == 400 and "unknown fault kind" in response.json()["error"]


def test_a_chunked_request_body_is_forwarded_byte_for_byte(proxy, s3_stack):
    """``Transfer-Encoding: chunked`` (what a client sends for a stream of unknown length) keeps its framing."""
    import http.client

    s3, _ = s3_stack
    data = os.urandom(7 * 2**20 + 123)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    blocks = (data[offset : offset + 65536] for offset in range(0, len(data), 65536))
    connection.request("PUT", "/proxied/chunked", body=blocks, encode_chunked=True)
    assert connection.getresponse().status == 200
    connection.close()
    assert s3.client().get_object(Bucket="proxied", Key="chunked")["Body"].read() == data
