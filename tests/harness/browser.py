"""The Airflow UI in headless Chromium: the browser smoke test and ``make screenshots`` walk the same pages.

It drives the system's Chromium through the system's chromedriver (Debian packages ``chromium`` and
``chromium-driver``) with selenium; nothing is downloaded. ``missing_browser()`` says why it cannot run here.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
# No first-run UI, no background traffic, no updates: a quiet browser for a loopback server.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def missing_browser() -> str | None:
    """Why the browser cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing (apt-get install -y {package}; `make test` does it when run as root)"
    return None


class AirflowBrowser:
    """One logged-out Chromium session against an Airflow api-server."""

    def __init__(self, base_url: str, *, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="consentio-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        # Service with an explicit driver path: selenium-manager then looks nothing up and downloads nothing.
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> AirflowBrowser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- waiting and reading -------------------------------------------------------------------------------------

    def text(self) -> str:
        # Read in one script call: an element handle goes stale when the single-page app re-renders or navigates.
        return str(self.driver.execute_script("return document.body ? document.body.innerText : ''"))

    def wait_for_text(self, *needles: str, patterns: tuple[str, ...] = ()) -> str:
        """The page's text once it shows every needle and matches every regex pattern.

        A timeout names what was missing and what was there.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            text = self.text()
            missing = [needle for needle in needles if needle not in text]
            missing += [f"/{pattern}/" for pattern in patterns if not re.search(pattern, text)]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.driver.current_url} never showed {missing}; it showed:\n{text[-3000:]}")
            time.sleep(0.5)

    def wait_for(self, css: str) -> Any:
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        return WebDriverWait(self.driver, self.timeout).until(
            expected_conditions.element_to_be_clickable(("css selector", css))
        )

    def open(self, path: str, *needles: str) -> str:
        self.driver.get(self.base_url + path)
        return self.wait_for_text(*needles)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        time.sleep(1)  # let transitions and lazy panels settle, so the picture shows the page at rest
        self.driver.save_screenshot(str(path))
        return path

    # --- the pages a data engineer walks -------------------------------------------------------------------------

    def log_in(self, user: str, password: str) -> None:
        self.driver.get(self.base_url + "/")
        self.wait_for("input[name=username]").send_keys(user)
        self.wait_for("input[name=password]").send_keys(password)
        self.wait_for("button[type=submit]").click()
        self.wait_for_text("Dags", "Admin")

    def new_connection_form(self, hook_name: str, *fields: str) -> str:
        """Admin > Connections > Add Connection, type ``hook_name``; returns the dialog's text once it shows fields."""
        from selenium.webdriver.common.keys import Keys

        self.open("/connections", "Add Connection")
        self.driver.find_element("xpath", "//button[normalize-space()='Add Connection']").click()
        connection_type = self.wait_for("[role=dialog] input[role=combobox]")
        connection_type.send_keys(hook_name)
        self.wait_for_text(hook_name)
        connection_type.send_keys(Keys.ENTER)
        return self.wait_for_text("Standard Fields", *fields)

    def expand_section(self, title: str, *needles: str) -> str:
        self.driver.find_element("xpath", f"//button[normalize-space()='{title}']").click()
        return self.wait_for_text(*needles)

    def dag_run(self, dag_id: str, run_id: str, task_states: dict[str, str] | None = None) -> str:
        """The run's page once its table of task instances shows each task's state.

        The grid shows the task IDs before the table's rows are filled in, so the wait is for the rows themselves:
        a task ID, then its state (cells are tab- or newline-separated).
        """
        rows = tuple(rf"\b{task}\s+{state.capitalize()}\b" for task, state in (task_states or {}).items())
        self.driver.get(f"{self.base_url}/dags/{dag_id}/runs/{run_id}")
        return self.wait_for_text(run_id, "Task Instances", patterns=rows)

    def show_view(self, view: str, *needles: str) -> str:
        """Switch the DAG pages' left panel to ``Grid``, ``Gantt`` or ``Graph`` (the UI remembers the choice)."""
        self.wait_for(f"button[aria-label^='Show {view}']").click()
        return self.wait_for_text(*needles)

    def task_log(self, dag_id: str, run_id: str, task_id: str, *needles: str) -> str:
        """The task's log, scrolled to its end (the viewer renders only the lines in view)."""
        self.open(f"/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", " INFO")
        deadline = time.monotonic() + self.timeout
        while True:
            self.driver.execute_script(
                """for (const el of document.querySelectorAll('*')) {
                       if (el.scrollHeight > el.clientHeight + 20 && el.innerText.includes(' INFO')) {
                           el.scrollTop = el.scrollHeight;
                       }
                   }"""
            )
            text = self.text()
            if all(needle in text for needle in needles) or time.monotonic() > deadline:
                return self.wait_for_text(*needles)
            time.sleep(0.5)

    def asset(self, asset_id: int, *needles: str) -> str:
        return self.open(f"/assets/{asset_id}", *needles)
