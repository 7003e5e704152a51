"""The dashboard in a real headless browser (Debian's chromium driven by Playwright)
against the api function serving real data; saves a screenshot under test-artifacts/."""

from __future__ import annotations

import shutil
import threading
import time

import functions_framework
import pytest
from werkzeug.serving import make_server

from scripts.stack import ROOT, free_port
from shared.accounts.importer import AccountEntry, import_accounts
from shared.pipeline.runner import handle_delivery
from shared.services import get_services

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture
def api_server(app_env, media_server, redis_client):
    app_env(API_TOKENS="dash-token")
    import_accounts(redis_client, [
        AccountEntry(api_key=f"AIzaSyDASH{n:020d}", daily_limit=100, minute_limit=10,
                     username=f"u{n}", password="pw", phone="", email="") for n in range(2)])
    from shared import keys
    from shared.accounts.pool import account_id

    redis_client.hset(keys.account_info(account_id(f"AIzaSyDASH{0:020d}")), mapping={
        "learned_limit": 4, "learned_until": int(time.time() * 1000) + 600_000})
    services = get_services()
    from shared.tasks.models import CreateTaskRequest
    from shared.tasks.operations import create_task

    for path in ("files/clip.mp4", "status/404", "files/portrait.mp4"):
        request = CreateTaskRequest.model_validate(
            {"url": media_server.url(path), "platform": "rpa"}, context={"platforms": ["rpa"]})
        task_id = create_task(services, request)[0].task_id
        if path != "files/portrait.mp4":
            handle_delivery(task_id, services)
    port = free_port()
    httpd = make_server("127.0.0.1", port, functions_framework.create_app("api", "main.py"),
                        threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


def test_dashboard_shows_the_api_numbers_and_task_tags(api_server, app_env) -> None:
    from playwright.sync_api import expect, sync_playwright

    client = functions_framework.create_app("api", "main.py").test_client()
    auth = {"Authorization": "Bearer dash-token"}
    stats = client.get("/api/v1/stats", headers=auth).get_json()["data"]
    tasks = client.get("/api/v1/tasks?limit=15", headers=auth).get_json()["data"]["tasks"]
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{api_server}/dashboard")
        expect(page.locator("#auth-status")).to_have_text("a token is required")
        expect(page.locator("#t-completed")).to_have_text("–")
        page.fill("#token", "not-the-token")
        page.click("#save-token")
        expect(page.locator("#auth-status")).to_have_text("token rejected")
        expect(page.locator("#tasks tbody tr")).to_have_count(0)

        page.fill("#token", "dash-token")
        page.click("#save-token")
        for status in ("pending", "processing", "completed", "failed"):
            expect(page.locator(f"#t-{status}")).to_have_text(str(stats["tasks"][status]))
        expect(page.locator("#q-pending")).to_have_text(str(stats["queue"]["pending"]))
        expect(page.locator("#h-completed")).to_have_text(str(stats["last_hour"]["completed"]))
        expect(page.locator("#pool-left-today")).to_have_text(
            str(stats["pool"]["capacity_left_today"]))
        expect(page.locator("#cost-today")).to_have_text(
            f"{stats['usage']['today']['cost_usd']:.4f}")
        expect(page.locator("#keys tbody tr")).to_have_count(2)
        expect(page.locator("#keys .learned")).to_have_text("learned 4 (configured 10)")
        expect(page.locator("#tasks tbody tr")).to_have_count(len(tasks))

        completed = next(t for t in tasks if t["status"] == "completed")
        page.click(f"#tasks tbody tr[data-task-id='{completed['task_id']}']")
        expect(page.locator("#task-detail")).to_be_visible()
        expect(page.locator("#detail-tags li")).to_have_text(completed["result"]["tags"])
        chinese = next(tag for tag in completed["result"]["tags"] if _has_cjk(tag))
        # the page's font stack names a CJK font and the machine has one: two different
        # characters are drawn as two different glyphs (missing glyphs are identical boxes)
        assert "Noto Sans CJK SC" in page.evaluate(
            "getComputedStyle(document.body).fontFamily")
        distinct = page.evaluate("""(text) => {
            const draw = (ch) => {
                const c = document.createElement('canvas'); c.width = c.height = 32;
                const g = c.getContext('2d');
                g.font = '24px ' + getComputedStyle(document.body).fontFamily;
                g.fillText(ch, 2, 26); return g.getImageData(0, 0, 32, 32).data.join();
            };
            return new Set([...text].map(draw)).size; }""", chinese)
        assert distinct == len(set(chinese)) > 1
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

        app_env(REDIS_URL="redis://127.0.0.1:1/0")  # Redis goes away
        page.click("#save-token")
        expect(page.locator("#banner")).to_contain_text("redis is unavailable")
        page.screenshot(path=str(artifacts / "dashboard-redis-down.png"))
        browser.close()
    assert (artifacts / "dashboard.png").stat().st_size > 10_000


def test_dashboard_shows_batches_with_progress_and_their_export(api_server, app_env) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_batches import complete

    client = functions_framework.create_app("api", "main.py").test_client()
    auth = {"Authorization": "Bearer dash-token"}
    items = [{"url": f"https://cdn.example.com/{n}.mp4", "platform": "rpa"} for n in range(3)]
    data = client.post("/api/v1/batches", json={"name": "商品目录", "items": items},
                       headers=auth).get_json()["data"]
    batch_id = data["batch"]["batch_id"]
    complete(get_services(), data["items"][0]["task_id"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page.goto(f"{api_server}/dashboard")
        page.fill("#token", "dash-token")
        page.click("#save-token")
        row = page.locator(f"#batches tbody tr[data-batch-id='{batch_id}']")
        expect(row).to_have_count(1)
        expect(row.locator("td").first).to_have_text("商品目录")
        expect(row.locator(".bar em")).to_have_text("1 / 3")
        expect(row.locator("a.export").first).to_have_attribute(
            "href", f"api/v1/batches/{batch_id}/results?format=csv")
        with page.expect_download() as download:
            row.locator("a.export").first.click()
        saved = download.value.path().read_bytes()
        assert saved.startswith(b"\xef\xbb\xbfindex,task_id") and saved.count(b"\n") == 4
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        row.screenshot(path=str(ROOT / "test-artifacts" / "dashboard-batches.png"))
        browser.close()


def test_dashboard_charts_the_pool_history(api_server, redis_client) -> None:
    """The pool's last 30 days and last hour drawn by the vendored uPlot, nothing fetched
    from elsewhere; the hovered values are the API's."""
    from playwright.sync_api import expect, sync_playwright

    from shared import keys
    from shared.accounts.history import quota_days
    from shared.accounts.pool import Outcome, account_id

    pool = get_services().pool
    key_id = account_id(f"AIzaSyDASH{0:020d}")
    for back, day in enumerate(reversed(quota_days(pool, 30)[:-1])):  # earlier days
        redis_client.hset(keys.account_usage(key_id), mapping={
            f"{day}:requests": 40 + back, f"{day}:input": 9000 + 100 * back,
            f"{day}:output": 700, f"{day}:cost_micro": 12_000 + back})
    for outcome in [Outcome.success()] * 6 + [Outcome("minute", "x", 30.0)]:
        pool.report(key_id, outcome)
    client = functions_framework.create_app("api", "main.py").test_client()
    history = client.get("/api/v1/accounts/history", headers={
        "Authorization": "Bearer dash-token"}).get_json()["data"]
    assert history["last_hour"][-1]["requests"] == 7
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        fetched: list[str] = []
        page.on("request", lambda request: fetched.append(request.url))
        page.goto(f"{api_server}/dashboard")
        page.fill("#token", "dash-token")
        page.click("#save-token")
        for chart in ("#chart-days", "#chart-hour"):
            expect(page.locator(f"{chart} canvas")).to_have_count(1)
        expect(page.locator("#chart-days .u-legend .u-label")).to_have_text(
            ["day", "requests", "tokens", "cost USD"])
        expect(page.locator("#chart-hour .u-legend .u-label")).to_have_text(
            ["minute", "requests", "429s", "capacity"])
        # hover the newest minute and the oldest day: the legend shows the API's numbers
        over = page.locator("#chart-hour .u-over").bounding_box()
        page.mouse.move(over["x"] + over["width"] - 1, over["y"] + over["height"] / 2)
        expect(page.locator("#chart-hour .u-legend .u-series").nth(1).locator(".u-value")
               ).to_have_text("7")
        expect(page.locator("#chart-hour .u-legend .u-series").nth(2).locator(".u-value")
               ).to_have_text("1")
        expect(page.locator("#chart-hour .u-legend .u-series").nth(3).locator(".u-value")
               ).to_have_text(str(history["last_hour"][-1]["capacity"]))
        over = page.locator("#chart-days .u-over").bounding_box()
        page.mouse.move(over["x"] + 1, over["y"] + over["height"] / 2)
        first = history["days"][0]
        expect(page.locator("#chart-days .u-legend .u-series").nth(1).locator(".u-value")
               ).to_have_text(str(first["requests"]))
        expect(page.locator("#chart-days .u-legend .u-series").nth(3).locator(".u-value")
               ).to_have_text(f"${first['cost_usd']:.4f}")
        # something was drawn: the requests colour is on both canvases
        for chart in ("#chart-days", "#chart-hour"):
            painted = page.evaluate("""(selector) => {
                const canvas = document.querySelector(selector + ' canvas');
                const data = canvas.getContext('2d').getImageData(
                    0, 0, canvas.width, canvas.height).data;
                let blue = 0;
                for (let i = 0; i < data.length; i += 4)
                    if (data[i + 2] > 200 && data[i] < 120 && data[i + 3] > 0) blue++;
                return blue; }""", chart)
            assert painted > 200, (chart, painted)
        page.locator("#pool-history").screenshot(path=str(artifacts / "dashboard-charts.png"))
        browser.close()
    assert fetched and all(url.startswith(api_server) for url in fetched), fetched
    assert (artifacts / "dashboard-charts.png").stat().st_size > 10_000
