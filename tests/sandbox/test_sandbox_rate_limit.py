"""The sandbox's leaky bucket: over its capacity, 429 with a Retry-After; the admin API is never limited."""

from __future__ import annotations

import httpx

from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.server import SandboxServer

PUBLIC = "/v2/partner/export/template/methods"


def statuses(http: httpx.Client, count: int) -> list[httpx.Response]:
    return [http.get(PUBLIC) for _ in range(count)]


def test_over_capacity_the_sandbox_answers_429_with_retry_after():
    # Leaking one request every 2 s, the bucket holds exactly its capacity during a quick series of requests.
    with (
        SandboxServer(SandboxConfig(rate_limit=0.5, rate_burst=3)) as server,
        httpx.Client(base_url=server.base_url) as http,
    ):
        answers = statuses(http, 6)
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429, 429]
        refused = answers[3]
        assert refused.json()["error"] == "rate_limited"
        assert 0 < float(refused.headers["Retry-After"]) <= 2.0
        assert http.get("/_sandbox/info").status_code == 200  # the admin API is not limited
        stats = http.get("/_sandbox/stats").json()
        assert stats["faults"]["rate_limited"] == 3
        assert stats["requests"][f"GET {PUBLIC.removeprefix('/v2/partner')} 429"] == 3


def test_reset_sets_and_clears_the_rate_limit():
    with SandboxServer() as server, httpx.Client(base_url=server.base_url) as http:
        assert all(answer.status_code == 200 for answer in statuses(http, 20))  # off by default
        described = http.post("/_sandbox/reset", json={"rate_limit": 0.5, "rate_burst": 2}).json()["config"]
        assert (described["rate_limit"], described["rate_burst"]) == (0.5, 2)
        assert [answer.status_code for answer in statuses(http, 4)] == [200, 200, 429, 429]
        http.post("/_sandbox/reset")
        assert http.post("/_sandbox/reset", json={"rate_limit": -1}).status_code == 400
        http.post("/_sandbox/reset", json={"rate_limit": 0})
        assert all(answer.status_code == 200 for answer in statuses(http, 20))


def test_the_cli_takes_the_rate_limit(monkeypatch, tmp_path, capsys):
    from airflow_provider_consentio.sandbox import __main__ as cli

    seen = {}

    class NoServer:
        def run(self, sockets):
            seen["sockets"] = sockets

    def keep(sandbox):
        seen["config"] = sandbox.config
        return NoServer()

    monkeypatch.setattr(cli, "uvicorn_server", keep)
    assert cli.main(["--port", "0", "--rate-limit", "20", "--rate-burst", "40", "--days", "1"]) == 0
    assert (seen["config"].rate_limit, seen["config"].rate_capacity) == (20, 40)
    # The CLI prints the sandbox's API key, as it should; read here, it never reaches the captured test output.
    assert "(rate limit 20/s, burst 40)" in capsys.readouterr().out
    seen["sockets"][0].close()
