"""The status page of `lake serve --http-addr`, loaded in a real headless browser (Debian's
chromium through chromedriver): no console errors and no request beyond the page, numbers equal
to what the deltalake package reads from the same lake, a chart with one point per date that
the browser draws, lag from the real broker, the same login as Flight SQL, and a page that
refreshes itself. A screenshot goes to $LAKE_TEST_ARTIFACTS/status-page.png."""
from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

import flight_serve
from conftest import run

SQL = pathlib.Path(__file__).resolve().parents[2] / "sql"
DATES = ["2025-01-10", "2025-01-11"]
EVENTS = 1500
LATE_EVENTS = 300
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def http(url: str, auth: tuple[str, str] | None = None, method: str = "GET"):
    request = urllib.request.Request(url, method=method)
    if auth:
        request.add_header("Authorization", basic(*auth))
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def lake_tables(lake: pathlib.Path) -> dict[str, dict]:
    """Every table's version, rows and live files, read by the deltalake package."""
    import deltalake
    out = {}
    for schema in ("raw", "processed", "system"):
        for path in sorted((lake / schema).iterdir()):
            if not (path / "_delta_log").is_dir():
                continue
            dt = deltalake.DeltaTable(str(path))
            out[f"{schema}.{path.name}"] = {
                "version": dt.version(),
                "rows": dt.to_pyarrow_dataset().count_rows(),
                "files": len(dt.file_uris()),
            }
    return out


def read(lake: pathlib.Path, table: str):
    import deltalake
    schema, name = table.split(".")
    return deltalake.DeltaTable(str(lake / schema / name)).to_pyarrow_table().to_pylist()


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


@pytest.fixture
def browser(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are missing: scripts/test.sh installs them")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Without the background-networking flags chromium keeps dialing Google's hosts, which
    # this machine's closed network refuses.
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1700", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def lake_with_runs(tmp_path, lake_bin, brokers, topic):
    """Events over two dates ingested; a passing run, a run with a warning and a failed run;
    then LATE_EVENTS more events left in Kafka (the lag)."""
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", str(EVENTS),
        "--days", "2", "--start-date", DATES[0], "--seed", "21", "--json")
    lake = tmp_path / "lake"
    ingest = [lake_bin, "ingest", "--lake", str(lake), "--brokers", brokers, "--topic", topic,
              "--group", topic, "--until-caught-up", "--no-maintain"]
    run(*ingest)
    warn_sql, fail_sql = tmp_path / "warn-sql", tmp_path / "fail-sql"
    for folder, severity in ((warn_sql, "warn"), (fail_sql, "error")):
        shutil.copytree(SQL, folder)
        (folder / "checks" / f"always_{severity}.sql").write_text(
            f"-- severity: {severity}\n-- description: violated on purpose\n"
            "SELECT 1 AS x UNION ALL SELECT 2\n")
    daily = [lake_bin, "daily", "--lake", str(lake), "--no-sensor", "--json"]
    run(*daily, "--sql", str(SQL), "--date", DATES[0])
    run(*daily, "--sql", str(warn_sql), "--date", DATES[1])
    failed = subprocess.run(
        [*daily, "--sql", str(fail_sql), "--date", DATES[1]], capture_output=True, text=True)
    assert failed.returncode != 0, failed.stdout
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events",
        str(LATE_EVENTS), "--days", "1", "--start-date", DATES[1], "--seed", "22", "--json")
    return lake, ingest


def test_status_page_in_a_browser_equals_the_lake(lake_with_runs, lake_bin, brokers, topic,
                                                  browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    lake, ingest = lake_with_runs
    server = flight_serve.start_server(lake_bin, lake, flight_serve.USER, flight_serve.PASSWORD,
                                       "--http-addr", "127.0.0.1:0", "--brokers", brokers,
                                       "--topic", topic)
    try:
        found = re.search(r"status page on (http://127\.0\.0\.1:\d+/)", server.banner)
        assert found, server.banner
        url = found.group(1)
        login = (flight_serve.USER, flight_serve.PASSWORD)

        # The login is Flight SQL's, answered the HTTP way.
        code, headers, _ = http(url)
        assert code == 401 and headers.get("www-authenticate", "").startswith("Basic"), headers
        assert http(url, (flight_serve.USER, "wrong"))[0] == 401
        assert http(url + "nothing-here", login)[0] == 404
        assert http(url, login, method="POST")[0] == 405
        code, _, body = http(url + "status.json", login)
        assert code == 200, body
        assert {t["name"] for t in json.loads(body)["tables"]} == set(lake_tables(lake))

        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                {"headers": {"Authorization": basic(*login)}})
        browser.get(url)
        assert browser.title == "lake status"

        # Every table with the numbers the deltalake package reads.
        expected = lake_tables(lake)
        rows = browser.find_elements(By.CSS_SELECTOR, "#tables tbody tr")
        shown = {r.get_attribute("data-table"): {
            "version": number(r.find_element(By.CSS_SELECTOR, ".version").text),
            "rows": number(r.find_element(By.CSS_SELECTOR, ".rows").text),
            "files": number(r.find_element(By.CSS_SELECTOR, ".files").text),
        } for r in rows}
        assert shown == expected

        # Ingest progress: the last offset of each partition in the lake, and the events still
        # in Kafka as lag.
        events = read(lake, "raw.user_events")
        last = {}
        for e in events:
            last[e["kafka_partition"]] = max(last.get(e["kafka_partition"], -1), e["kafka_offset"])
        partitions = browser.find_elements(By.CSS_SELECTOR, "#ingest tbody tr")
        assert {int(p.get_attribute("data-partition")):
                number(p.find_element(By.CSS_SELECTOR, ".offset").text)
                for p in partitions} == last
        lags = [number(p.find_element(By.CSS_SELECTOR, ".lag").text) for p in partitions]
        assert sum(lags) == LATE_EVENTS, lags
        assert browser.find_element(By.ID, "total-lag").text == f"Total lag: {LATE_EVENTS} messages."

        # The runs with their checks, as system.daily_runs and system.check_results hold them.
        runs = read(lake, "system.daily_runs")
        shown_runs = {r.get_attribute("data-run"): r for r in
                      browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")}
        assert set(shown_runs) == {r["run_id"] for r in runs}
        for r in runs:
            row = shown_runs[r["run_id"]]
            assert row.find_element(By.CSS_SELECTOR, ".date").text == str(r["date"])
            assert row.find_element(By.CSS_SELECTOR, ".status").text.split()[0] == r["status"]
        statuses = sorted(r["status"] for r in runs)
        assert statuses == ["failed", "succeeded", "succeeded"], statuses
        for c in read(lake, "system.check_results"):
            item = shown_runs[c["run_id"]].find_element(
                By.CSS_SELECTOR, f"li[data-check='{c['check']}']")
            assert item.get_attribute("class") == c["status"]
            if c["violation_count"]:
                assert number(item.find_element(By.CSS_SELECTOR, ".violations").text) == \
                    c["violation_count"]
        seen = {li.get_attribute("class") for li in browser.find_elements(By.CSS_SELECTOR, "li[data-check]")}
        assert seen == {"pass", "warn", "fail"}, seen

        # The chart: one point per date of processed.daily_metrics, drawn by the browser.
        metrics = sorted(read(lake, "processed.daily_metrics"), key=lambda r: r["date"])
        points = browser.find_elements(By.CSS_SELECTOR, "#chart-total_events circle")
        assert [(p.get_attribute("data-date"), float(p.get_attribute("data-value")))
                for p in points] == [(str(m["date"]), float(m["total_events"])) for m in metrics]
        for column in ("total_events", "unique_users", "conversion_rate"):
            drawn = browser.execute_script(
                "const s = document.querySelector(arguments[0]);"
                "return [s.getBoundingClientRect().width,"
                " s.querySelector('polyline').getTotalLength()];", f"#chart-{column}")
            assert drawn[0] > 100 and drawn[1] > 10, (column, drawn)

        # Offline and clean: nothing loaded besides the page, nothing logged as an error.
        assert browser.execute_script(
            "return performance.getEntriesByType('resource').length") == 0
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe

        artifacts = pathlib.Path(os.environ.get("LAKE_TEST_ARTIFACTS", "target/test-artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "status-page.png"
        browser.set_window_size(1280, browser.execute_script(
            "return document.documentElement.scrollHeight") + 200)
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # The page refreshes itself: once the late events are ingested, the same tab (no new
        # navigation by the test) shows them and no lag.
        run(*ingest)
        want = len(events) + LATE_EVENTS

        def refreshed(driver):
            try:
                cell = driver.find_element(By.CSS_SELECTOR, "tr[data-table='raw.user_events'] .rows")
                lag = driver.find_element(By.ID, "total-lag").text
                return number(cell.text) == want and lag == "Total lag: 0 messages."
            except Exception:  # the DOM is being replaced by the reload
                return False

        WebDriverWait(browser, 40, poll_frequency=1).until(refreshed)
    finally:
        server.stop()
