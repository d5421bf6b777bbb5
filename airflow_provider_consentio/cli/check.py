"""``consentio check``: log in, call every listing the operators read, and compare each answer with what the
provider assumes of it (the declarations in resources/, compared by client/shapes.py: the same code the client
runs on every answer). Read-only: it only logs in and lists. No Airflow import here (see command.py).

Exit codes: 0 every listing answers as assumed; 1 a difference would break an operator (named); 2 the check could
not log in (wrong key, unreachable host, TLS failure), said in one line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlencode

import httpx

from airflow_provider_consentio import resources
from airflow_provider_consentio.client import (
    ConsentioClient,
    ConsentioSettings,
    RetryPolicy,
    TokenCache,
    endpoints,
    shapes,
)
from airflow_provider_consentio.client.auth import token_from_session
from airflow_provider_consentio.client.endpoints import Listing, PartnerAPI
from airflow_provider_consentio.client.shapes import Difference
from airflow_provider_consentio.errors import (
    ConsentioAuthError,
    ConsentioError,
    ConsentioResponseError,
    ConsentioTLSError,
)
from airflow_provider_consentio.resources import Choices, Resource

OK, DIFFERS, UNREACHABLE = 0, 1, 2
# A check reports what it meets (a 429 or a 503 included, with its status): no retry, so a failure shows at once.
CHECK_RETRIES = RetryPolicy(max_retries=0)

# The promoted orders' read-back reads the sale orders for the caller's references: a drift there breaks it too.
READ_BACK = ("ConsentioCreatePromotedOrdersOperator",)

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``2d``, ``12h``, ``1d12h``, ``90m``: a positive duration."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise ValueError(f"--since must be a duration such as 2d, 12h or 1d12h, got {text!r}")
    duration = sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta())
    if duration <= timedelta(0):
        raise ValueError(f"--since must be longer than zero, got {text!r}")
    return duration


@dataclass(frozen=True)
class Probe:
    """One listing call, and each reader of its answer: the listing as it reads it, and the operators it fails."""

    title: str
    readers: Sequence[tuple[Listing, tuple[str, ...]]]
    # The same listing over a shorter window: two halves must not add up to more than the whole (a silent cap).
    over: Callable[[datetime, datetime], Listing] | None = None

    @property
    def listing(self) -> Listing:
        return self.readers[0][0]


def probes(api: PartnerAPI, start: datetime, end: datetime) -> list[Probe]:
    """A call of every declared listing (resources/), over [start, end) where it takes a window; a listing that
    needs a choice (the orders' ``kind``) is called once per choice."""
    found = []
    for resource in resources.ALL:
        if resource.read is not None:
            found += [_probe(api, resource, params, start, end) for params in _probe_params(resource, start, end)]
    found.append(Probe("export template methods", [(api.template_method_listing(), ())]))
    return found


def _probe(api: PartnerAPI, resource: Resource, params: dict[str, Any], start: datetime, end: datetime) -> Probe:
    read = resource.read
    assert read is not None
    window = (start, end) if read.windowed else (None, None)
    title = " ".join([*(str(params[name]) for name in _choices(resource)), read.title or resource.nouns])
    readers: list[tuple[Listing, tuple[str, ...]]] = [(api.listing(resource, *window, **params), read.readers)]
    if resource is resources.ORDERS and params.get("kind") == endpoints.PROMOTED_ORDER_KIND:
        readers.append((api.orders_by_reference(start, end), READ_BACK))
    over = (lambda lower, upper: api.listing(resource, lower, upper, **params)) if read.windowed else None
    return Probe(title, readers, over)


def _choices(resource: Resource) -> list[str]:
    """The required parameters that take one of a few values: each value is a listing of its own to check."""
    read = resource.read
    assert read is not None
    return [name for name in read.required if isinstance(read.params[name], Choices)]


def _probe_params(resource: Resource, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The parameters of each call of ``resource``'s listing: a date-time one is the window's start, dates are the
    window's first and last days, each required choice takes each of its values; optional filters stay unset."""
    read = resource.read
    assert read is not None
    fixed: dict[str, Any] = {}
    dates = iter((start.date(), (end - timedelta.resolution).date()))
    for name in read.required:
        kind = read.params[name]
        if kind == "instant":
            fixed[name] = start
        elif kind == "date":
            fixed[name] = next(dates)
    variants = [fixed]
    for name in _choices(resource):
        choices = resources.resolve(read.params[name].reference)
        variants = [{**variant, name: choice} for variant in variants for choice in choices]
    return variants


@dataclass
class Finding:
    difference: Difference
    records: int = 0
    operators: set[str] = field(default_factory=set)


@dataclass
class EndpointReport:
    title: str
    endpoint: str
    query: str = ""
    status: int | None = None
    records: int | None = None
    latency_ms: float | None = None
    rate_limits: dict[str, str] = field(default_factory=dict)
    findings: dict[tuple[str, str, bool], Finding] = field(default_factory=dict)
    error: str | None = None
    # The operators that cannot read the listing at all (it answered an error or no JSON).
    unread_by: set[str] = field(default_factory=set)

    def failed(self, error: str, probe: Probe) -> EndpointReport:
        self.error = error
        self.unread_by = {name for _, names in probe.readers for name in names}
        return self

    def add(self, difference: Difference, operators: Sequence[str], *, counted: bool = True) -> None:
        """Record a difference of one record (or of the answer); ``counted=False``: seen already, by another reader."""
        key = (difference.field, difference.problem, difference.breaking)
        finding = self.findings.get(key)
        if finding is None:
            finding = self.findings[key] = Finding(difference)
        elif not counted:
            finding.operators.update(operators if difference.breaking else ())
            return
        finding.records += 1
        finding.operators.update(operators if difference.breaking else ())

    @property
    def broken_operators(self) -> set[str]:
        return self.unread_by | {name for finding in self.findings.values() for name in finding.operators}

    @property
    def breaking(self) -> list[Finding]:
        return [finding for finding in self.findings.values() if finding.difference.breaking]

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.broken_operators:
            return "FAIL"
        return "WARN" if self.breaking else "OK"


class Check:
    """Runs the probes with one client and writes the report to ``out``."""

    def __init__(self, client: ConsentioClient, out: TextIO):
        self.client = client
        self.out = out

    def run(self, since: timedelta, now: datetime | None = None) -> int:
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        # Whole seconds, rounded up: readable, and nothing written before the check starts falls outside.
        end = moment.replace(microsecond=0) + (timedelta(seconds=1) if moment.microsecond else timedelta(0))
        start = end - since
        settings = self.client.settings
        try:
            session = self.client.login()
        except ConsentioError as exc:
            self.out.write(f"consentio check: FAIL: {login_failure(settings, exc)}\n")
            return UNREACHABLE
        lifetime = token_from_session(session)[1]
        workspace = session.workspace or {}
        name = f" ({workspace['name']})" if workspace.get("name") else ""
        self._line(
            f"Logged in to Consentio workspace {settings.workspace_id}{name} at {settings.base_url} "
            f"(API key masked); token lifetime {_lifetime(lifetime)}"
        )
        self._line(
            f"Window: [{endpoints.rfc3339(start, 'start')}, {endpoints.rfc3339(end, 'end')}) ({_duration(since)})\n"
        )
        reports = [self.probe(probe, start, end) for probe in probes(self.client.api, start, end)]
        for report in reports:
            self.print_report(report)
        return self.print_verdict(reports, settings.workspace_id)

    def probe(self, probe: Probe, start: datetime, end: datetime) -> EndpointReport:
        call = probe.listing.call
        query = f"?{urlencode(call.params, safe=':')}" if call.params else ""
        report = EndpointReport(probe.title, call.endpoint, query)
        began = time.perf_counter()
        try:
            response, body = self.client.exchange(call)
        except ConsentioError as exc:
            report.latency_ms = (time.perf_counter() - began) * 1000
            report.status = getattr(exc, "status", None)  # an API error or a 429/5xx; None: never answered
            return report.failed(str(exc), probe)
        report.latency_ms = (time.perf_counter() - began) * 1000
        report.status = response.status_code
        report.rate_limits = shapes.rate_limit_headers(response.headers)
        try:
            value = endpoints.json_value(call, response, body)
        except ConsentioResponseError as exc:
            return report.failed(str(exc), probe)
        for number, (listing, operators) in enumerate(probe.readers):
            self._compare(report, listing, operators, response, body, value, first_reader=number == 0)
        if probe.over is not None and report.records:
            self._halves(report, probe, start, end)
        return report

    def _compare(
        self,
        report: EndpointReport,
        listing: Listing,
        operators: Sequence[str],
        response: httpx.Response,
        body: bytes,
        value: Any,
        first_reader: bool,
    ) -> None:
        """Add how the answer differs for this reader of it; each finding counts the records it was seen in."""
        records, envelope = shapes.records_of(listing.shape, value)
        report.records = len(records)
        for difference in [envelope, *shapes.paging_differences(response.headers, value, len(records))]:
            if difference is not None:
                report.add(difference, operators, counted=first_reader)
        for record in records:
            # One count per record and difference, however many of its items differ the same way.
            for difference in shapes.distinct(shapes.record_differences(listing.shape, record, listing.keys)):
                if difference.breaking or first_reader:  # unknown fields: once per answer
                    report.add(difference, operators, counted=first_reader)
        if listing.shape.element == "object" and not report.breaking:
            # The client's own reading of the answer: what the operators will meet.
            try:
                endpoints.raw_records(listing, response, body, self.client.redact)
            except ConsentioResponseError as exc:
                report.add(Difference("(answer)", str(exc)), operators)

    def _halves(self, report: EndpointReport, probe: Probe, start: datetime, end: datetime) -> None:
        assert probe.over is not None
        middle = start + (end - start) / 2
        counts = []
        for lower, upper in ((start, middle), (middle, end)):
            listing = probe.over(lower, upper)
            try:
                response, body = self.client.exchange(listing.call)
                value = endpoints.json_value(listing.call, response, body)
            except ConsentioError:
                return  # the whole window was read; a failing half says nothing about caps
            counts.append(len(shapes.records_of(listing.shape, value)[0]))
        whole = report.records or 0
        if sum(counts) > whole:
            problem = (
                f"the window answered {whole} records but its two halves {counts[0]} + {counts[1]} = {sum(counts)}: "
                "the listing caps its answers, assumed one answer holds the whole window"
            )
            report.add(Difference("(paging)", problem), [name for _, names in probe.readers for name in names])

    def print_report(self, report: EndpointReport) -> None:
        self._line(f"[{report.verdict:<5}] {report.title}: {report.endpoint}{report.query}")
        status = f"HTTP {report.status}" if report.status is not None else "not reached"
        latency = f"{report.latency_ms:.0f} ms" if report.latency_ms is not None else "-"
        records = f"{report.records} records" if report.records is not None else "no records read"
        limits = ", ".join(f"{k}: {v}" for k, v in report.rate_limits.items()) or "none"
        self._line(f"        {status} · {records} · {latency} · rate-limit headers: {limits}")
        if report.error is not None:
            self._line(f"        error: {report.error}")
            self._line(f"        breaks: {', '.join(sorted(report.broken_operators)) or 'no operator'}")
            return
        missing = [f for f in report.breaking if f.difference.problem.startswith("missing")]
        shape = [f for f in report.breaking if f.difference.field.startswith("(")]
        mismatched = [f for f in report.breaking if f not in missing and f not in shape]
        unknown = [f for f in report.findings.values() if not f.difference.breaking]
        self._line(f"        missing fields: {_listed(missing, report.records)}")
        self._line(f"        type mismatches: {_listed(mismatched, report.records)}")
        for finding in shape:
            self._line(f"        {finding.difference}")
        self._line(f"        unknown fields (kept as received): {_listed(unknown, report.records, brief=True)}")
        if report.broken_operators:
            self._line(f"        breaks: {', '.join(sorted(report.broken_operators))}")
        elif report.records == 0:
            self._line("        no records in the window: only the envelope was checked (try a longer --since)")

    def print_verdict(self, reports: list[EndpointReport], workspace_id: int) -> int:
        failing = [r for r in reports if r.verdict in ("FAIL", "ERROR")]
        broken = sorted({name for r in reports for name in r.broken_operators})
        if not failing:
            warned = [r.title for r in reports if r.verdict == "WARN"]
            note = f" (differences that break no operator: {', '.join(warned)})" if warned else ""
            self._line(f"\nVerdict: OK: all {len(reports)} listings of workspace {workspace_id} answer as the provider "
                       f"assumes{note}")  # fmt: skip
            return OK
        titles = ", ".join(r.title for r in failing)
        operators = f"; this breaks {', '.join(broken)}" if broken else ""
        self._line(f"\nVerdict: FAIL: {len(failing)} of {len(reports)} listings differ ({titles}){operators}")
        return DIFFERS

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")


def _listed(findings: list[Finding], records: int | None, brief: bool = False) -> str:
    if not findings:
        return "none"
    parts = []
    for finding in findings:
        counted = f"{finding.records} of {records} records" if records else f"{finding.records}x"
        text = finding.difference.field if brief else str(finding.difference)
        parts.append(f"{text} [{counted}]")
    return "; ".join(parts)


def _duration(span: timedelta) -> str:
    hours, seconds = divmod(int(span.total_seconds()), 3600)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (seconds // 60, "m"), (seconds % 60, "s")]
    return "--since " + ("".join(f"{value}{unit}" for value, unit in parts if value) or "0s")


def _lifetime(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (the token carries no exp claim and the login no expires_in)"
    return f"{seconds:.0f} s ({timedelta(seconds=round(seconds))})"


def login_failure(settings: ConsentioSettings, exc: ConsentioError) -> str:
    """One line saying why the check could not log in, and what to check."""
    where = f"workspace {settings.workspace_id} at {settings.base_url}"
    if isinstance(exc, ConsentioAuthError):
        return f"cannot log in to {where}: {exc.detail}"
    if isinstance(exc, ConsentioTLSError):
        return f"cannot log in to {where}: {str(exc).split(' failed: ', 1)[-1]}"
    reason = _unreachable_reason(exc)
    if reason:
        return (
            f"cannot reach {settings.base_url} ({reason}): check the connection's Base URL (host) and port, "
            "and that this machine may connect to it"
        )
    return f"cannot log in to {where}: {exc}"


def _unreachable_reason(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, TimeoutError) or type(seen).__name__ in ("ConnectTimeout", "ReadTimeout"):
            return "timed out"
        if type(seen).__name__ == "gaierror":
            return "the host name does not resolve"
        if type(seen).__name__ == "ConnectError":
            text = str(seen)
            return "connection refused" if "refused" in text.lower() else text or "cannot connect"
        seen = seen.__cause__ or seen.__context__
    return None


def check(
    settings: ConsentioSettings, since: timedelta, out: TextIO, on_secret: Callable[[str], None] | None = None
) -> int:
    """Run the check with a private token cache (a fresh login says whether the key works) and quick retries."""
    quick = replace(settings, retry=CHECK_RETRIES)
    with ConsentioClient(quick, token_cache=TokenCache(), on_secret=on_secret) as client:
        return Check(client, out).run(since)
