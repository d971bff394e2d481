"""The console in a real headless Chromium, against real nodes.

An analyst logs in, works the inbox, opens a case, records a status, sees
NOTICE_SENT refused (with the node's reason) while a police hold is active,
and logs out; wrong passwords are throttled, a post without its CSRF token
is refused, an analyst is refused on the admin page, and no page ever puts a
reported URL where a browser would load or follow it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from hfp.v1 import receipt_pb2, report_pb2, status_pb2
from tests.console.browser import assert_never_loaded, chromium, require_chromium
from tests.console.conftest import DK, NL, PASSWORD, RunningConsole
from tests.support.hotline import record, submit_url, wait_history
from tests.support.net import DEADLINE, Network

#: The payload a hostile reporter might put into a report's free text.
HOSTILE_NOTE = '<script>document.title="pwned"</script><img src="https://x.example.org/t.gif">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $CONSOLE_SCREENSHOTS, or under pytest's basetemp."""
    chosen = os.environ.get("CONSOLE_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class Visit:
    """One browser on the console, checking every page it sees."""

    def __init__(self, driver: Any, console: RunningConsole, shots: Path) -> None:
        self.driver = driver
        self.base = console.url
        self.shots = shots
        self.reported: list[str] = []

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.check()

    def check(self) -> None:
        assert_never_loaded(self.driver.page_source, self.reported)
        assert self.driver.title != "pwned"

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def submit(self, css: str) -> None:
        """Click a submit button and wait until the next page has replaced this one."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        # A marker on the old document, not staleness_of(<html>): while a page is
        # torn down chromedriver may answer a staleness probe with "Node with
        # given id does not belong to the document" (a WebDriverException, not
        # StaleElementReference), which failed a CI run. The marker is gone
        # exactly when a new document has replaced this one.
        self.driver.execute_script("window.hfedOldPage = true;")
        self.find(css).click()
        WebDriverWait(self.driver, 60, ignored_exceptions=(WebDriverException,)).until(
            _replaced_and_loaded
        )
        self.check()

    def login(self, name: str, password: str = PASSWORD) -> None:
        self.get("/login")
        self.find("#name").send_keys(name)
        self.find("#password").send_keys(password)
        self.submit("#login")

    def logout(self) -> None:
        if self.find_all("#logout"):
            self.submit("#logout")

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def choose(self, css: str, label: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find(css)).select_by_visible_text(label)

    def options(self, css: str) -> list[str]:
        return [o.text for o in self.find_all(f"{css} option")]


def _replaced_and_loaded(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "return window.hfedOldPage === undefined && document.readyState === 'complete';"
        )
    )


@pytest.fixture
def visit(browser: Any, console: RunningConsole, screenshots: Path) -> Iterator[Visit]:
    browser.delete_all_cookies()
    v = Visit(browser, console, screenshots)
    yield v
    v.logout()


def submit(net: Network, url: str, note: str = "") -> receipt_pb2.Receipt:
    """A report hotline-dk itself is responsible for (hosted in DK)."""
    report = report_pb2.Report(url=url, hosting_country="DK", analyst_note=note)
    with net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        return stub.SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE).receipt


def hold(net: Network, case_id: str) -> None:
    """police-dk asks hotline-dk's node to hold the case for an hour."""
    until = Timestamp()
    until.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    with net.channel("police-dk", DK) as channel:
        lgrpc.LiaisonServiceStub(channel).RequestHold(
            lpb.RequestHoldRequest(case_id=case_id, reason="investigation", until=until),
            timeout=DEADLINE,
        )


def test_an_analyst_works_a_case_and_meets_a_police_hold(
    visit: Visit, console: RunningConsole
) -> None:
    tag = os.urandom(4).hex()
    url = f"https://files-{tag}.example.com/gallery/{tag}"
    visit.reported += [url, "https://x.example.org/t.gif"]
    receipt = submit(console.net, url, HOSTILE_NOTE)
    other = submit(console.net, f"https://other-{tag}.example.com/x")
    assert receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED and receipt.case_id
    visit.reported.append(f"https://other-{tag}.example.com/x")

    visit.login("ana")
    listed = [row.get_attribute("data-case") for row in visit.find_all("tr.case")]
    assert receipt.case_id in listed and other.case_id in listed
    assert listed.index(other.case_id) < listed.index(receipt.case_id)  # newest first
    visit.shot("inbox")

    visit.find("#search").send_keys(url)
    visit.submit("#apply")
    assert [r.get_attribute("data-case") for r in visit.find_all("tr.case")] == [receipt.case_id]

    visit.find("#search").clear()
    visit.find("#search").send_keys(receipt.item_id)
    visit.submit("#apply")
    assert visit.find("#case-id").text == receipt.case_id
    assert visit.find("#case-url").text == url
    assert HOSTILE_NOTE in visit.find("dd.note").text  # shown as text, never run
    assert visit.options("#next-status") == [
        "ASSESSED_ILLEGAL",
        "ASSESSED_NOT_ILLEGAL",
        "CONTENT_GONE",
        "MOVED",
    ]
    visit.choose("#next-status", "ASSESSED_ILLEGAL")
    visit.submit("#record")
    assert visit.find("#case-status").text.startswith("ASSESSED_ILLEGAL")
    assert visit.find_all("#recorded")
    signatures = [td.text for td in visit.find_all("#history td.signature")]
    assert len(signatures) == 2 and all(t.startswith(f"verified: {DK}") for t in signatures)

    hold(console.net, receipt.case_id)
    visit.get(f"/cases/{receipt.case_id}")
    assert "held until" in visit.find("#hold").text
    assert "NOTICE_SENT" in visit.options("#next-status")
    visit.choose("#next-status", "NOTICE_SENT")
    visit.submit("#record")
    assert visit.find("#refused .reason").text == "HOLD_ACTIVE"
    assert visit.find("#case-status").text.startswith("LEA_HOLD")
    visit.shot("case-held")

    # Without a hold, the same step goes through: assess, then send the notice.
    visit.get(f"/cases/{other.case_id}")
    visit.choose("#next-status", "ASSESSED_ILLEGAL")
    visit.submit("#record")
    visit.choose("#next-status", "NOTICE_SENT")
    visit.submit("#record")
    assert visit.find("#case-status").text.startswith("NOTICE_SENT")
    assert not visit.find_all("#refused")

    visit.get("/inbox?status=5")
    held = [r for r in visit.find_all("tr.case") if r.get_attribute("data-case") == receipt.case_id]
    assert held and "held" in (held[0].get_attribute("class") or "")

    visit.submit("#logout")
    assert visit.find_all("#login")
    visit.get("/inbox")
    assert visit.find_all("#login"), "after logout the inbox asks for a login"

    acted = [e for e in operator_audit(console.net) if e["cases"] == receipt.case_id]
    records = [(e["who"], e["outcome"], e["detail"]) for e in acted if e["call"] == "RecordStatus"]
    assert records == [
        ("ana", "OK", "ASSESSED_ILLEGAL (update 2)"),
        ("ana", "FAILED_PRECONDITION", records[1][2]),
    ]
    assert records[1][2].startswith("HOLD_ACTIVE: ")
    assert {e["call"] for e in acted} >= {"GetCase", "RecordStatus"}


def operator_audit(net: Network) -> list[dict[str, Any]]:
    """``hfed audit --log operator`` of hotline-dk, as JSON."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "federation.cli.main",
            "audit",
            "--devnet",
            str(net.directory),
            "--member",
            DK,
            "--log",
            "operator",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def test_wrong_passwords_are_throttled(visit: Visit) -> None:
    for _ in range(5):
        visit.login("sue", "not the password at all")
        assert visit.find("#error").text == "Wrong name or password."
    visit.login("sue")  # the right password, but the account is locked for now
    assert "Too many failed logins" in visit.find("#error").text
    assert not visit.find_all("#logout")
    visit.shot("login-throttled")


def test_a_post_without_its_csrf_token_is_refused(visit: Visit, console: RunningConsole) -> None:
    receipt = submit(console.net, f"https://csrf-{os.urandom(4).hex()}.example.com/")
    visit.login("ana")
    visit.get(f"/cases/{receipt.case_id}")
    visit.driver.execute_script(
        "document.querySelectorAll('form.record input[name=csrf]').forEach(e => e.remove())"
    )
    visit.submit("#record")
    assert "403 Forbidden" in visit.driver.page_source
    assert "CSRF token" in visit.driver.page_source
    visit.get(f"/cases/{receipt.case_id}")
    assert visit.find("#case-status").text.startswith("RECEIVED"), "nothing was recorded"


def test_an_analyst_is_refused_on_the_admin_page(visit: Visit) -> None:
    visit.login("ana")
    visit.get("/admin/users")
    assert "needs the role admin" in visit.find("#forbidden").text
    visit.logout()
    visit.login("root")
    visit.get("/admin/users")
    names = visit.find("#users").text
    assert "ana" in names and "root" in names
    visit.shot("accounts")


def test_every_answer_carries_the_strict_policy(console: RunningConsole) -> None:
    for path in ("/login", "/static/console.css"):
        with urllib.request.urlopen(console.url + path, timeout=10) as answer:
            policy = answer.headers["content-security-policy"]
            assert policy.startswith("default-src 'self'")
            assert "unsafe-inline" not in policy
            assert answer.headers["x-frame-options"] == "DENY"
            body = answer.read().decode()
            assert "<script" not in body and "style=" not in body


def test_an_analyst_submits_one_report_and_a_csv_file(
    visit: Visit, console: RunningConsole, tmp_path: Path
) -> None:
    tag = os.urandom(4).hex()
    here, there = f"https://dk-{tag}.example.com/a", f"https://nl-{tag}.example.com/b"
    visit.reported += [here, there]
    visit.login("ana")
    visit.get("/submit")
    visit.find("#submit-url").send_keys(here)
    visit.find("#submit-country").send_keys("DK")
    visit.submit("#submit-one")
    assert visit.find("#results .outcome").text == "ACCEPTED"
    visit.submit("#results a")  # the new case, filed here
    assert visit.find("#case-url").text == here

    sheet = tmp_path / "reports.csv"
    sheet.write_text(
        f"url,country,media_type\n{there},NL,image\nhttps://nocountry-{tag}.example.com/,,\n"
        f"{here}/again,DK,not-a-type\n"
    )
    visit.get("/submit")
    visit.find("#csv-file").send_keys(str(sheet))
    visit.submit("#upload")
    summary = visit.find("#summary").text
    assert summary.startswith("1 submitted, 2 failed (read as encoding utf-8, delimiter comma")
    rows = [r.text for r in visit.find_all("#results tbody tr")]
    assert "FORWARDED hotline-nl" in rows[0]  # to the member responsible for NL
    assert "url and country are required" in rows[1]
    assert "media_type 'not-a-type'" in rows[2]
    visit.shot("submit-csv")


def test_a_supervisor_sees_the_statistics_with_their_plots(
    visit: Visit, console: RunningConsole
) -> None:
    removed = submit(console.net, f"https://removed-{os.urandom(4).hex()}.example.com/")
    with console.net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        for status in (
            status_pb2.CASE_STATUS_ASSESSED_ILLEGAL,
            status_pb2.CASE_STATUS_CONTENT_REMOVED,
        ):
            stub.RecordStatus(
                hpb.RecordStatusRequest(case_id=removed.case_id, status=status), timeout=DEADLINE
            )
    visit.login("ana")
    visit.get("/stats")
    assert "needs the role supervisor" in visit.find("#forbidden").text
    visit.logout()
    visit.login("sam")
    visit.get("/stats")
    assert int(visit.find("#removed").text.split()[0]) >= 1
    assert visit.find("#median").text.endswith(" h")
    assert "CONTENT_REMOVED" in visit.find("#status-plot svg").text
    assert "DK" in visit.find("#country-plot svg").text
    assert visit.find_all("#median-plot svg circle"), "this week's median is plotted"
    assert visit.find_all("#share-plot svg circle")
    # Removed within seconds of its report: counted in the first bucket.
    labels = visit.find("#distribution-plot svg").text
    assert "≤ 6 h" in labels and "> 30 d" in labels
    first_bar = visit.find_all("#distribution-plot svg rect")[0]
    assert int(first_bar.get_attribute("width")) > 0
    visit.shot("statistics")

    export = fetch_as(visit, visit.find("#stats-export").get_attribute("href"))
    sheet = [line.split(",") for line in export.decode("utf-8-sig").splitlines()]
    assert sheet[0] == ["measure", "group", "value"]
    figures = {(m, g): v for m, g, v in sheet[1:]}
    assert int(figures[("removed by time to removal", "≤ 6 h")]) >= 1
    assert int(figures[("removed", "all")]) >= 1
    assert sum(
        int(v) for (m, _g), v in figures.items() if m == "removed by time to removal"
    ) == int(figures[("removed", "all")])
    visit.logout()
    visit.login("ana")
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch_as(visit, console.url + "/stats.csv")
    assert refused.value.code == 403  # the export is for supervisors too


def fetch_as(visit: Visit, url: str) -> bytes:
    """GET ``url`` with the browser's session cookie (a download Chromium would save)."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in visit.driver.get_cookies())
    request = urllib.request.Request(url, headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment;")
        body: bytes = answer.read()
        return body


def _our_row(visit: Visit, report_id: str) -> Any:
    rows = [
        r for r in visit.find_all("#ours tr.report") if r.get_attribute("data-report") == report_id
    ]
    assert rows, f"report {report_id} is not on Our reports"
    return rows[0]


def test_an_analyst_follows_a_forwarded_report_until_its_status_arrives(
    visit: Visit, console: RunningConsole
) -> None:
    url = f"https://nl-ours-{os.urandom(4).hex()}.example.com/p"
    visit.reported.append(url)
    visit.login("ana")
    visit.get("/submit")
    visit.find("#submit-url").send_keys(url)
    visit.find("#submit-country").send_keys("NL")
    visit.submit("#submit-one")
    assert visit.find("#results .outcome").text == "FORWARDED"
    visit.get("/ours?country=NL")
    [report_id] = [
        r.get_attribute("data-report")
        for r in visit.find_all("#ours tr.report")
        if r.find_element("css selector", "td.url").text == url
    ]

    # hotline-nl files it and assesses it; the signed status travels back.
    nl_case = wait_history(console.net, NL, report_id, 1)
    record(console.net, NL, nl_case.case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
    deadline = time.monotonic() + 30
    for _ in range(120):  # bounded: 120 reloads, 30 s
        visit.get("/ours?country=NL")
        row = _our_row(visit, report_id)
        if row.find_element("css selector", ".status").text == "assessed_illegal":
            break
        assert time.monotonic() < deadline, "the status never reached Our reports"
        time.sleep(0.25)
    assert row.find_element("css selector", ".responsible").text == NL
    assert row.find_element("css selector", ".their-case").text == "…" + nl_case.case_id[-12:]
    assert "report(s) match" in visit.find("#ours-totals").text
    visit.shot("our-reports")

    export = visit.find("#ours-export").get_attribute("href")
    lines = fetch_as(visit, export).decode("utf-8-sig").splitlines()
    assert lines[0].startswith("report_id,status,overdue,country,responsible,case_id")
    assert any(report_id in line and "assessed_illegal" in line for line in lines[1:])


def test_the_operations_page_shows_peers_lifetimes_and_refusals(
    visit: Visit, console: RunningConsole
) -> None:
    url = f"https://nl-ops-{os.urandom(4).hex()}.example.com/p"
    visit.reported.append(url)
    receipt = submit_url(console.net, DK, url, "NL")
    assert receipt.outcome == receipt_pb2.OUTCOME_FORWARDED
    visit.login("ana")
    deadline = time.monotonic() + 30
    for _ in range(120):  # bounded: 120 reloads, 30 s
        visit.get("/operations")
        peers = {r.get_attribute("data-peer"): r for r in visit.find_all("#peers tr.peer")}
        if NL in peers and int(peers[NL].find_element("css selector", ".delivered").text) >= 1:
            break
        assert time.monotonic() < deadline, "the forwarded report never showed as delivered"
        time.sleep(0.25)
    assert visit.find("#roster-version").text.startswith("version ")
    assert "left)" in visit.find("#roster-expires").text
    assert visit.find("#certificate").text.startswith("expires ")
    assert visit.find_all("#refused-items")
    visit.shot("operations")


def test_a_supervisor_reads_the_audit_of_police_and_analysts(
    visit: Visit, console: RunningConsole
) -> None:
    receipt = submit(console.net, f"https://audit-{os.urandom(4).hex()}.example.com/")
    hold(console.net, receipt.case_id)  # police-dk's call: the liaison audit
    visit.login("ana")
    visit.get(f"/cases/{receipt.case_id}")  # ana's GetCase: the operator audit
    visit.get("/audit")
    assert "needs the role supervisor" in visit.find("#forbidden").text
    visit.logout()

    visit.login("sam")  # not sue: the throttle test locks her account
    visit.get("/audit")
    entries = [
        (r.find_element("css selector", ".who").text, r.find_element("css selector", ".call").text)
        for r in visit.find_all("#audit tr.entry")
    ]
    assert ("police-dk", "RequestHold") in entries and ("ana", "GetCase") in entries
    visit.choose("#audit-log", "liaison")
    visit.submit("#audit-apply")
    assert {
        r.find_element("css selector", ".who").text for r in visit.find_all("#audit tr.entry")
    } == {"police-dk"}
    visit.shot("audit")
    lines = fetch_as(visit, visit.find("#audit-export").get_attribute("href"))
    text = lines.decode("utf-8-sig").splitlines()
    assert text[0] == "at,log,who,call,outcome,calls,cases,detail"
    assert any("RequestHold" in line and receipt.case_id in line for line in text[1:])
    assert not any(",operator," in line for line in text[1:])
