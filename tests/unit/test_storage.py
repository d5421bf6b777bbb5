"""Storage failures past the client's retries are named: what was done, on which path, and the store's answer."""

from __future__ import annotations

import pytest

from airflow_provider_consentio.errors import ConsentioStorageError
from airflow_provider_consentio.operators.base.storage import storage_errors


def test_a_storage_failure_names_the_action_and_the_path():
    with (
        pytest.raises(ConsentioStorageError, match=r"^Reading memory://x/y failed .*: FileNotFoundError: y$"),
        storage_errors("Reading", "memory://x/y"),
    ):
        raise FileNotFoundError("y")


def test_an_s3_failure_names_its_operation_status_and_code():
    from botocore.exceptions import ClientError

    answer = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}
    answer["ResponseMetadata"] = {"HTTPStatusCode": 503}
    cause = ClientError(answer, "PutObject")
    expected = (
        r"Writing 3 bytes to s3://b/k failed .*: PutObject -> HTTP 503: SlowDown: Please reduce your request rate\."
    )
    with pytest.raises(ConsentioStorageError, match=expected), storage_errors("Writing 3 bytes to", "s3://b/k"):
        raise OSError("[Errno 16] Please reduce your request rate.") from cause  # as s3fs raises it


def test_the_providers_own_errors_pass_unchanged():
    from airflow_provider_consentio.errors import ConsentioConfigError

    with pytest.raises(ConsentioConfigError, match=r"^bad$"), storage_errors("Reading", "s3://b/k"):
        raise ConsentioConfigError("bad")
