"""Exceptions raised by the Consentio client and operators.

Every message names the endpoint, the HTTP status and the offending record codes where there are any, and never
contains the API key or a token: messages are built only from the request line and the server's error body.
"""

from __future__ import annotations


class ConsentioError(Exception):
    """Base class for every error this provider raises."""


class ConsentioConfigError(ConsentioError):
    """The connection or an operator argument is unusable (bad workspace ID, insecure URL, ...)."""


class ConsentioValidationError(ConsentioError):
    """Input records failed validation before anything was sent; ``problems`` lists each one."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


class ConsentioAPIError(ConsentioError):
    """The API answered with an error status.

    :param endpoint: request line such as ``GET /v2/partner/123/order``.
    :param status: HTTP status code.
    :param code: the machine-readable error code of the body, when it has one.
    :param detail: the human-readable part of the body (or a short excerpt of a non-JSON body).
    """

    def __init__(self, endpoint: str, status: int, detail: str, code: str | None = None):
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.detail = detail
        label = f"{code}: {detail}" if code else detail
        super().__init__(f"{endpoint} -> HTTP {status}: {label}")


class ConsentioAuthError(ConsentioAPIError):
    """401/403: the API key was rejected, or the token has no permission for this workspace."""


class ConsentioNotFoundError(ConsentioAPIError):
    """404: the workspace, order or path does not exist."""


class ConsentioTransientError(ConsentioError):
    """A failure worth retrying: 429, 5xx, a timeout or a dropped connection.

    Raised to the caller only once the retry budget is spent; ``retry_after`` carries the server's hint, and
    ``request_not_sent`` says the request never left this machine (so even a non-idempotent call may be repeated);
    ``status`` is the HTTP status of the answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        request_not_sent: bool = False,
        status: int | None = None,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.request_not_sent = request_not_sent
        self.status = status


class ConsentioResponseError(ConsentioError):
    """A 2xx answer whose body is not what the endpoint returns (HTML, truncated or malformed JSON, wrong shape)."""


class ConsentioSchemaDriftError(ConsentioResponseError):
    """A 2xx answer that differs from what the provider assumes of it (client/endpoints.py): a key field renamed
    or retyped, a number sent as a string, another envelope, a paged or capped listing.

    :param endpoint: request line such as ``GET /v2/partner/123/order``.
    :param status: the answer's HTTP status.
    :param differences: each difference, ``"<field>: <what differs>"``.
    :param where: which record shows them, e.g. `` (record #3 of 40)``.
    """

    def __init__(self, endpoint: str, status: int, differences: list[str], where: str = ""):
        self.endpoint = endpoint
        self.status = status
        self.differences = differences
        super().__init__(
            f"{endpoint} -> HTTP {status}: the answer differs from what the provider assumes{where}: "
            f"{'; '.join(differences)}. "
            "Run `airflow consentio check` (or `python -m airflow_provider_consentio check`) to list every difference."
        )


class ConsentioTLSError(ConsentioConfigError):
    """The server's TLS certificate could not be verified: not retried, since repeating it cannot succeed."""


class ConsentioStorageError(ConsentioError):
    """Object storage (s3://, gs://...) failed for good, past its client's own retries, while an operator wrote,
    read or removed a file: the message names what was done, the path, and the store's operation, status and
    error code (s3fs alone says "[Errno 121] We encountered an internal error", with no path or operation)."""
