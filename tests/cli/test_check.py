"""`consentio check` against the sandbox: every listing OK, each drift named with the operators it breaks, and a
wrong key, a closed port and an untrusted TLS certificate each said in one line. In-process for the report's
content; subprocesses (`python -m airflow_provider_consentio check`, `airflow consentio check`) for exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_provider_consentio.cli.check import check, parse_duration
from airflow_provider_consentio.client import ConsentioClient, ConsentioSettings, TokenCache
from airflow_provider_consentio.client.shapes import rate_limit_headers
from airflow_provider_consentio.models import PurchaseNeed
from airflow_provider_consentio.models.catalogue import Client, ClientAddress, Product
from airflow_provider_consentio.sandbox import SandboxConfig, SandboxServer
from airflow_provider_consentio.sandbox.faults import FaultPlan

TITLES = (
    "sale orders",
    "purchase orders",
    "edited orders",
    "purchase needs",
    "changed products",
    "clients",
    "addresses",
    "export template methods",
)


def recent_config(**overrides) -> SandboxConfig:
    """Orders from three days ago to tomorrow, so a `--since 2d` window holds some."""
    return SandboxConfig(start=datetime.now(UTC).date() - timedelta(days=3), days=4, **overrides)


def seed_catalogue(server: SandboxServer) -> None:
    """A purchase need, products, a client and an address: every listing then answers records."""
    today = datetime.now(UTC).date()
    settings = ConsentioSettings(workspace_id=server.workspace_id, base_url=server.base_url, api_key=server.api_key)
    with ConsentioClient(settings, token_cache=TokenCache()) as client:
        need = {"reference_code": "8410000000001", "start_date": today, "end_date": today, "quantity": "2.5"}
        needs = [PurchaseNeed(code=f"PN-{n}", quantity_unit="kg", external_status="open", **need) for n in range(12)]
        assert not client.upsert_purchase_needs(needs).errors
        products = [Product(sku=f"SKU-{n}", name=f"Tomato {n}", base_price="1.25") for n in range(12)]
        assert not client.upsert_products(products).errors
        assert not client.upsert_clients([Client(client_external_id="C-1", client_name="Fresh & Co")]).errors
        address = {"street": "Calle Mayor 1", "city": "Sevilla", "postal_code": "41001", "country": "ES"}
        assert not client.upsert_addresses(
            [ClientAddress(external_id="A-1", client_external_id="C-1", **address)]
        ).errors


@pytest.fixture(scope="module")
def recent_sandbox():
    with SandboxServer(recent_config()) as server:
        yield server


def drifted(server: SandboxServer, *modes: str) -> SandboxServer:
    server.sandbox.reset(recent_config(drift=modes))
    seed_catalogue(server)
    return server


def run_check(server: SandboxServer, api_key: str | None = None, since: str = "2d") -> tuple[int, str]:
    settings = ConsentioSettings(
        workspace_id=server.workspace_id, base_url=server.base_url, api_key=api_key or server.api_key, timeout=10
    )
    out = io.StringIO()
    return check(settings, parse_duration(since), out), out.getvalue()


def block(output: str, title: str) -> str:
    """The lines of one endpoint's report."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("[") and f"] {title}:" in line)
    rest = next((i for i in range(first + 1, len(lines)) if lines[i].startswith(("[", "Verdict"))), len(lines))
    return "\n".join(lines[first:rest])


def test_every_listing_of_the_sandbox_answers_as_assumed(recent_sandbox):
    drifted(recent_sandbox)  # no drift: the sandbox as it is
    code, output = run_check(recent_sandbox)
    assert code == 0, output
    assert "Logged in to Consentio workspace 1001 (Sandbox Fresh Foods)" in output
    assert "token lifetime 3599 s" in output
    for title in TITLES:
        report = block(output, title)
        assert report.startswith("[OK   ]"), report
        assert "HTTP 200" in report and " 0 records" not in report, report
        assert "rate-limit headers: none" in report and " ms " in report
    assert "missing fields: none" in block(output, "sale orders")
    assert "unknown fields (kept as received): channel" in block(output, "sale orders")  # informational
    assert output.splitlines()[-1] == "Verdict: OK: all 8 listings of workspace 1001 answer as the provider assumes"
    assert recent_sandbox.api_key not in output


@pytest.mark.parametrize(
    ("mode", "title", "difference", "operator"),
    [
        ("renamed_key", "sale orders", "missing fields: id: missing (the record has fields the provider does not "
         "know: order_id, channel) [", "ConsentioExportOrdersOperator"),
        ("renamed_key", "purchase needs", "code: missing", "ConsentioExportPurchaseNeedsOperator"),
        ("renamed_key", "clients", "client_external_id: missing", "ConsentioExportClientsOperator"),
        ("amount_as_string", "sale orders", "items[].amount: is a string, assumed a JSON number",
         "ConsentioExportOrdersOperator"),
        ("amount_as_string", "purchase needs", "quantity: is a string, assumed a JSON number",
         "ConsentioExportPurchaseNeedsOperator"),
        ("amount_as_number", "changed products", 'base_price: is a number, assumed a number written as a string',
         "ConsentioExportProductsOperator"),
        ("data_envelope", "edited orders", "(envelope): the answer is an object (keys: data), assumed a bare JSON "
         "array", "ConsentioEditedOrdersOperator"),
        ("data_envelope", "purchase needs", '(keys: data), assumed a bare JSON array (or {"purchase_needs": [...]})',
         "ConsentioExportPurchaseNeedsOperator"),
        ("capped", "sale orders", "(paging): header x-total-count: ", "ConsentioExportOrdersOperator"),
        ("capped", "changed products", "(paging): header x-total-count: 12, with 10 records in the answer",
         "ConsentioExportProductsOperator"),
    ],
)  # fmt: skip
def test_each_drift_is_named_with_the_operators_it_breaks(recent_sandbox, mode, title, difference, operator):
    code, output = run_check(drifted(recent_sandbox, mode))
    assert code == 1, output
    report = block(output, title)
    assert report.startswith("[FAIL ]"), report
    assert difference in report, report
    assert operator in report.splitlines()[-1], report
    verdict = output.splitlines()[-1]
    assert verdict.startswith("Verdict: FAIL: ") and title in verdict and operator in verdict, verdict


def test_a_silent_cap_shows_when_the_halves_of_a_window_hold_more_than_the_whole(recent_sandbox, monkeypatch):
    from airflow_provider_consentio.sandbox import drift

    capping = drift.drifted
    # The same cap without its X-Total-Count header: only the two halves of the window can show it.
    monkeypatch.setattr(drift, "drifted", lambda *args: (capping(*args)[0], []))
    code, output = run_check(drifted(recent_sandbox, "capped"))
    assert code == 1, output
    assert "x-total-count" not in output
    assert "the window answered 10 records but its two halves 10 + 10 = 20: the listing caps its answers" in block(
        output, "sale orders"
    )


def test_a_difference_no_operator_reads_only_warns(recent_sandbox, monkeypatch):
    """Template methods are read by no operator: a difference there is reported, and the verdict stays OK."""
    from airflow_provider_consentio.client import endpoints

    # As if the provider assumed objects where the API lists names.
    monkeypatch.setattr(endpoints, "TEMPLATE_METHODS", endpoints.ListingShape("export template methods"))
    code, output = run_check(drifted(recent_sandbox))
    assert code == 0, output
    report = block(output, "export template methods")
    assert report.startswith("[WARN ]") and "(record): is a string, assumed an object" in report, report
    assert output.splitlines()[-1] == (
        "Verdict: OK: all 8 listings of workspace 1001 answer as the provider assumes (differences that break no "
        "operator: export template methods)"
    )


def test_a_listing_that_answers_an_error_fails_its_operators(recent_sandbox):
    server = drifted(recent_sandbox)
    server.sandbox.faults = FaultPlan.parse({"rules": [{"kind": "503", "every": 1}], "paths": "/client$"})
    code, output = run_check(server)
    assert code == 1, output
    report = block(output, "clients")
    assert report.splitlines()[:4] == [
        "[ERROR] clients: GET /v2/partner/1001/client",
        "        HTTP 503 · no records read · "
        + report.splitlines()[1].split(" · ")[2]
        + " · rate-limit headers: none",
        "        error: GET /v2/partner/1001/client -> HTTP 503: unavailable: service unavailable (gave up after 0 "
        "retries)",
        "        breaks: ConsentioExportClientsOperator",
    ]
    assert block(output, "addresses").startswith("[OK   ]")  # /client$ only
    assert output.splitlines()[-1] == (
        "Verdict: FAIL: 1 of 8 listings differ (clients); this breaks ConsentioExportClientsOperator"
    )


def test_rate_limit_headers_are_the_ones_named_so():
    headers = {"X-RateLimit-Remaining": "4", "RateLimit-Limit": "100", "Retry-After": "2", "X-Request-Id": "abc"}
    assert rate_limit_headers(headers) == {"X-RateLimit-Remaining": "4", "RateLimit-Limit": "100", "Retry-After": "2"}


def test_a_wrong_key_is_one_line(recent_sandbox):
    drifted(recent_sandbox)
    code, output = run_check(recent_sandbox, api_key="sbx_not_the_key_of_this_workspace")
    assert code == 2
    assert output == (
        f"consentio check: FAIL: cannot log in to workspace 1001 at {recent_sandbox.base_url}: Consentio rejected "
        "the API key for workspace 1001 (the API key is not valid for this workspace). Check the connection's API "
        "key (password) and workspace ID (login).\n"
    )


def test_durations():
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration(" 90m ") == timedelta(minutes=90)
    for bad in ("", "2", "2x", "0d", "two days", "-1d"):
        with pytest.raises(ValueError, match="--since"):
            parse_duration(bad)


# --- as commands, in subprocesses: the exit codes and the one-line failures -----------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory):
    """The sandbox as its own process (its own process group), as a user starts it."""
    start = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_consentio.sandbox", "--port", "0", "--start", start, "--days", "4",
         ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        # The CLI binds, then prints its banner: "Consentio sandbox on http://127.0.0.1:PORT: ..."
        base_url = process.stdout.readline().split(" on ", 1)[1].split(": ", 1)[0]
        yield base_url, SandboxConfig().api_key
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def connection(base_url: str, api_key: str) -> str:
    return json.dumps({"conn_type": "consentio", "login": "1001", "password": api_key, "host": base_url})


def start_check(base_url: str, api_key: str, *command: str) -> subprocess.Popen:
    env = {**os.environ, "AIRFLOW_CONN_CONSENTIO_DEFAULT": connection(base_url, api_key)}
    command = command or (sys.executable, "-m", "airflow_provider_consentio", "check")
    return subprocess.Popen(
        [*command, "--since", "2d"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


class UntrustedTLSServer:
    """A TLS server on 127.0.0.1 with a self-signed certificate: every handshake a verifying client makes fails."""

    def __init__(self, workdir: Path):
        cert, key = self_signed_certificate(workdir)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed: the test is over
            # The client refuses the certificate, which is the point.
            with conn, contextlib.suppress(ssl.SSLError, OSError):
                self.context.wrap_socket(conn, server_side=True).close()

    def __enter__(self) -> UntrustedTLSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() the thread waits in (close() alone does not)
        self.sock.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_python_m_check_exit_codes_and_one_line_failures(sandbox_process, tmp_path):
    base_url, key = sandbox_process
    closed = f"http://127.0.0.1:{free_port()}"
    with UntrustedTLSServer(tmp_path) as tls:
        # Started together: each pays Airflow's import time once, side by side.
        runs = {
            "ok": start_check(base_url, key),
            "wrong key": start_check(base_url, "sbx_not_the_key_of_this_workspace"),
            "closed port": start_check(closed, key),
            "self-signed": start_check(tls.base_url, key),
        }
        results = {name: finished(process) for name, process in runs.items()}

    code, out, err = results["ok"]
    assert code == 0, out + err
    assert out.splitlines()[-1] == "Verdict: OK: all 8 listings of workspace 1001 answer as the provider assumes"
    assert key not in out + err

    expected = {
        "wrong key": "cannot log in to workspace 1001 at {url}: Consentio rejected the API key for workspace 1001",
        "closed port": "cannot reach {url} (connection refused): check the connection's Base URL (host) and port",
        "self-signed": "cannot log in to workspace 1001 at {url}: the server's TLS certificate could not be verified "
        "(self-signed certificate)",
    }
    urls = {"wrong key": base_url, "closed port": closed, "self-signed": tls.base_url}
    for name, start in expected.items():
        code, out, err = results[name]
        assert code == 2, (name, out, err)
        lines = out.splitlines()
        assert len(lines) == 1 and lines[0].startswith("consentio check: FAIL: " + start.format(url=urls[name])), (
            name,
            out,
        )
        assert "Traceback" not in out + err, (name, err)
        assert key not in out + err


def test_python_m_check_against_a_drifting_sandbox_process_exits_1(sandbox_process):
    base_url, key = sandbox_process
    import httpx

    start = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    httpx.post(
        f"{base_url}/_sandbox/reset", json={"start": start, "days": 4, "drift": ["renamed_key"]}
    ).raise_for_status()
    try:
        code, out, err = finished(start_check(base_url, key))
    finally:
        httpx.post(f"{base_url}/_sandbox/reset", json={"start": start, "days": 4}).raise_for_status()
    assert code == 1, out + err
    assert "id: missing (the record has fields the provider does not know: order_id" in out
    assert out.splitlines()[-1].startswith(
        "Verdict: FAIL: 3 of 8 listings differ (sale orders, purchase orders, edited"
    )


def _airflow_has_provider_cli() -> bool:
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    return "cli" in schema["properties"]


@pytest.mark.skipif(not _airflow_has_provider_cli(), reason="this Airflow minor loads no provider CLI commands")
def test_airflow_consentio_check_runs_through_the_provider_cli(sandbox_process):
    base_url, key = sandbox_process
    airflow = str(Path(sys.executable).parent / "airflow")
    code, out, err = finished(start_check(base_url, key, airflow, "consentio", "check"))
    assert code == 0, out + err
    assert "[OK   ] edited orders: GET /v2/partner/1001/order/edited" in out
    assert out.splitlines()[-1] == "Verdict: OK: all 8 listings of workspace 1001 answer as the provider assumes"
    assert key not in out + err


def test_every_operator_the_check_names_exists():
    """The names in a `breaks:` line are the provider's own classes (a renamed operator would leave a stale name)."""
    import importlib

    from airflow_provider_consentio.cli.check import probes
    from airflow_provider_consentio.client.endpoints import PartnerAPI
    from airflow_provider_consentio.get_provider_info import get_provider_info

    info = get_provider_info()
    modules = [
        importlib.import_module(module)
        for section in ("operators", "sensors", "triggers")
        for entry in info[section]
        for module in entry["python-modules"]
    ]
    now = datetime.now(UTC)
    named = {
        name.split("(")[0]
        for probe in probes(PartnerAPI(1001, "key"), now - timedelta(days=1), now)
        for _, names in probe.readers
        for name in names
    }
    assert len(named) >= 10
    missing = {name for name in named if not any(hasattr(module, name) for module in modules)}
    assert not missing, missing
