"""The Dagster UI of a test's own (`dagster dev`: webserver and daemon, a temp DAGSTER_HOME, a free port) and a
headless Chromium from Debian's packages driving it through Selenium, screenshots kept under the test's folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import requests

from bc_pipeline.dev import SUPERSEDED_WARNING
from bc_pipeline_tests.dagster_storage import ROOT
from bc_pipeline_tests.redis_server import free_port

CHROMIUM = Path("/usr/bin/chromium")  # `scripts/test-chromium.sh install` (make test runs it)
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Screenshots are also copied to this folder when set, or to test-artifacts/ under CI (for the CI to keep).
ARTIFACTS_VARIABLE = "BC_PIPELINE_TEST_ARTIFACTS"
UI_START_SECONDS = 120


def chromium_missing() -> Optional[str]:
    """What the browser test lacks (Debian's chromium, chromedriver, the selenium package), or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    return ", ".join(missing) or None


class DagsterUi:
    """`dagster dev` on 127.0.0.1:<port> against this repo's workspace.yaml; its GraphQL for checks on outcomes."""

    def __init__(self, port: int, dagster_home: Path, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.dagster_home = dagster_home
        self.log = log

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30)
        response.raise_for_status()
        answer = response.json()
        assert "errors" not in answer, answer
        return answer["data"]

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))


@contextmanager
def dagster_dev(folder: Path, env: dict[str, str]) -> Iterator[DagsterUi]:
    """Started and its code location loaded (or a clear failure with the end of its log); stopped afterwards."""
    dagster_home = folder / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    log_path = folder / "dagster_dev.log"
    env = {**env, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(ROOT),
           "PYTHONWARNINGS": SUPERSEDED_WARNING}
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1",
         "-p", str(port)], cwd=dagster_home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ui = DagsterUi(port, dagster_home, log_path)
    try:
        _wait_until_loaded(ui, process)
        yield ui
    finally:
        _stop(process)
        log.close()


def _wait_until_loaded(ui: DagsterUi, process: subprocess.Popen) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + UI_START_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited ({process.returncode}):\n{_tail(ui.log)}")
        try:
            entries = ui.graphql(query)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the Dagster UI did not load in {UI_START_SECONDS}s:\n{_tail(ui.log)}")
        time.sleep(0.5)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen) -> None:
    """SIGINT to its process group (as Ctrl+C): the webserver, daemon and code server shut down; killed if not."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Browser:
    """Headless Chromium: pages by path, waits on text, numbered screenshots."""

    def __init__(self, driver, base_url: str, shots: Path):
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.taken: list[Path] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for_text(self, *texts: str, seconds: float = 90) -> str:
        """The page's text once it shows every one of `texts`."""
        from selenium.webdriver.support.ui import WebDriverWait

        def shown(_driver):
            try:
                body = self.text()
            except Exception:  # the page is re-rendering
                return False
            return body if all(t in body for t in texts) else False

        try:
            return WebDriverWait(self.driver, seconds, poll_frequency=0.5).until(shown)
        except Exception:
            self.screenshot("timeout")
            body = self.text()
            missing = [t for t in texts if t not in body]
            raise AssertionError(f"{self.driver.current_url} never showed {missing}; it shows:\n{body[:3000]}") from None

    def skip_welcome(self) -> None:
        """A new browser profile is greeted by a "Join the Dagster community" dialog over the page: Skip."""
        from selenium.webdriver.common.by import By

        for button in self.driver.find_elements(By.XPATH, "//div[@role='dialog']//button[normalize-space()='Skip']"):
            if button.is_displayed():
                button.click()

    def button(self, label: str) -> str:
        """The XPath of a visible button whose text is `label`, in any letter case."""
        lower = "translate(normalize-space(), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
        return f"//button[{lower}='{label.lower()}']"

    def click(self, xpath: str, seconds: float = 30) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        self.skip_welcome()

        element = WebDriverWait(self.driver, seconds).until(ec.element_to_be_clickable((By.XPATH, xpath)))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.taken.append(path)
        return path


@contextmanager
def chromium(base_url: str, shots: Path) -> Iterator[Browser]:
    """Debian's chromium and chromedriver, named explicitly, so Selenium Manager has nothing to find or download."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1600,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={shots.parent / 'chromium-profile'}")  # the test's own, not HOME's
    shots.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser = Browser(driver, base_url, shots)
    try:
        yield browser
    finally:
        driver.quit()
        print(f"\nscreenshots of the Dagster UI: {shots}")
        target = os.environ.get(ARTIFACTS_VARIABLE) or (str(ROOT / "test-artifacts") if os.environ.get("CI") else "")
        if target:
            copy = Path(target) / "dagster-ui"
            shutil.copytree(shots, copy, dirs_exist_ok=True)
            print(f"copied to {copy}")
