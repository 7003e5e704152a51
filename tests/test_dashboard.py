"""The dashboard in a real headless browser (Debian's chromium driven by Playwright)
against the api function serving real data; saves a screenshot under test-artifacts/."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import functions_framework
import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from scripts.stack import ROOT, free_port
from shared.accounts.importer import AccountEntry, import_accounts
from shared.pipeline.runner import handle_delivery
from shared.services import get_services

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GEMINI = {"TAGGER": "gemini", "GEMINI_BASE_URL": "http://127.0.0.1:9"}
"""The Gemini tagger, nothing listening: the dashboard shows its key pool sections."""
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@contextmanager
def serving() -> Iterator[str]:
    """The api function under a real WSGI server on 127.0.0.1."""
    port = free_port()
    httpd = make_server("127.0.0.1", port, functions_framework.create_app("api", "main.py"),
                        threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()


@pytest.fixture
def bare_server(app_env) -> Iterator[str]:
    """No task, no key, no token: a fresh deployment."""
    with serving() as url:
        yield url


@pytest.fixture
def api_server(app_env, media_server, redis_client):
    app_env(API_TOKENS="dash-token")
    import_accounts(redis_client, [
        AccountEntry(api_key=f"AIzaSyDASH{n:020d}", daily_limit=100, minute_limit=10,
                     username=f"u{n}", password="pw", phone="", email="") for n in range(2)])
    from shared import redis_keys
    from shared.accounts.pool import account_id

    redis_client.hset(redis_keys.account_info(account_id(f"AIzaSyDASH{0:020d}")), mapping={
        "learned_limit": 4, "learned_until": int(time.time() * 1000) + 600_000})
    services = get_services()
    from shared.app.tasks import create_task
    from shared.tasks.models import CreateTaskRequest

    for path in ("files/clip.mp4", "status/404", "files/portrait.mp4"):
        request = CreateTaskRequest.model_validate(
            {"url": media_server.url(path), "platform": "rpa"}, context={"platforms": ["rpa"]})
        task_id = create_task(services, request)[0].task_id
        if path != "files/portrait.mp4":
            handle_delivery(task_id, services.worker)
    with serving() as url:
        yield url


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
        expect(page.locator("#login")).to_be_visible()  # the API asked for a token
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
        oldest = stats["retention"]["oldest_task_at"][:10]
        expect(page.locator("#t-oldest")).to_have_text(f"{oldest} (kept for ever)")
        expect(page.locator("#pool-capacity")).to_be_hidden()  # TAGGER=local: no keys needed
        expect(page.locator("#pool-offline")).to_contain_text(
            "The offline tagger (local-visual-v1) runs and needs no keys")
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


@pytest.mark.serial  # reads the current minute of the pool's history
def test_dashboard_charts_the_pool_history(api_server, app_env, redis_client) -> None:
    """The pool's last 30 days and last hour drawn by the vendored uPlot, nothing fetched
    from elsewhere; the hovered values are the API's."""
    from playwright.sync_api import expect, sync_playwright

    app_env(**GEMINI)
    from shared import redis_keys
    from shared.accounts.history import quota_days
    from shared.accounts.pool import Outcome, account_id

    pool = get_services().pool
    key_id = account_id(f"AIzaSyDASH{0:020d}")
    into_minute = time.time() % 60  # the requests' minute must still be the newest when hovered
    if into_minute > 30:
        time.sleep(60.5 - into_minute)
    for back, day in enumerate(reversed(quota_days(pool, 30)[:-1])):  # earlier days
        redis_client.hset(redis_keys.account_usage(key_id), mapping={
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
        page.locator("#chart-hour").scroll_into_view_if_needed()
        over = page.locator("#chart-hour .u-over").bounding_box()
        page.mouse.move(over["x"] + over["width"] - 1, over["y"] + over["height"] / 2)
        expect(page.locator("#chart-hour .u-legend .u-series").nth(1).locator(".u-value")
               ).to_have_text("7")
        expect(page.locator("#chart-hour .u-legend .u-series").nth(2).locator(".u-value")
               ).to_have_text("1")
        expect(page.locator("#chart-hour .u-legend .u-series").nth(3).locator(".u-value")
               ).to_have_text(str(history["last_hour"][-1]["capacity"]))
        page.locator("#chart-days").scroll_into_view_if_needed()
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


# --- every view at phone and desktop width, and the bad inputs ------------------------

ARTIFACTS = ROOT / "test-artifacts"
VIEWS = ("queue", "task-counts", "charts", "pool", "latest", "batches-card")
"""The dashboard's sections, one screenshot each (with the offline tagger: the pool's
charts and the Gemini batch jobs take no room then)."""
GEMINI_ONLY = ("#pool-history", "#gemini-jobs-card", "#pool-usage", "#keys")
AUTH = {"Authorization": "Bearer dash-token"}


@contextmanager
def dashboard_page(url: str, width: int, height: int = 900):
    """A page on the dashboard and the console errors and page errors it produced."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        problems: list[str] = []
        page.on("console", lambda message: problems.append(f"console: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
        page.goto(f"{url}/dashboard")
        try:
            yield page, problems
        finally:
            browser.close()


def fits(page, width: int) -> None:
    """Nothing sticks out sideways: the page scrolls only down."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def api_get(path: str, headers: dict | None = None):
    return functions_framework.create_app("api", "main.py").test_client().get(
        path, headers=headers or {})


def clone_completed(count: int, tags: list[str] | None = None,
                    timings: dict[str, int] | None = None) -> list[str]:
    """`count` copies of the completed task's row (its real result), finished over the
    last 23 h; with `tags`, the copies' flat tags are those; with `timings`, their stage
    timings."""
    from shared.tasks import rollups
    from shared.tasks.db import utcnow
    from shared.tasks.schema import video_tasks as t

    engine = get_services().store.engine
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(t).where(t.c.status == "completed").limit(1))
                   .mappings().one())
    row.pop("id")
    if tags is not None:
        row["tags"] = {**row["tags"], "tags": tags}
    if timings is not None:
        row["timings"] = timings
    now = utcnow()
    rows = [{**row, "task_id": str(uuid.uuid4()), "idempotency_key": None,
             "processed_end": now - timedelta(seconds=(n * 8) % 82_800)}
            for n in range(count)]
    with engine.begin() as conn:
        for start in range(0, count, 1000):
            conn.execute(sa.insert(t), rows[start:start + 1000])
        rollups.mark_stale(conn)  # rows written behind the store's back: rebuilt now
    get_services().store.recount_rollups()
    return [r["task_id"] for r in rows]


@pytest.mark.parametrize("width", [390, 1440])
def test_every_view_at_phone_and_desktop_width(api_server, app_env, media_server,
                                               width: int) -> None:
    """No token configured: no token box; tagger named; error code, URL, three charts,
    a task's timeline and frames; the Gemini-only sections take no room with the offline
    tagger; no console error; nothing sideways."""
    from playwright.sync_api import expect

    app_env(API_TOKENS="")
    tasks = api_get("/api/v1/tasks?limit=15").get_json()["data"]["tasks"]
    failed = next(t for t in tasks if t["status"] == "failed")
    completed = next(t for t in tasks if t["status"] == "completed")
    ARTIFACTS.mkdir(exist_ok=True)
    with dashboard_page(api_server, width) as (page, problems):
        expect(page.locator("#tasks tbody tr")).to_have_count(len(tasks))
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#tagger")).to_have_text("tagger: local · model local-visual-v1")
        expect(page.locator("#queue dt").nth(3)).to_have_text("dead letters")
        expect(page.locator("#task-counts dt").nth(3)).to_have_text("failed tasks")
        row = page.locator(f"#tasks tbody tr[data-task-id='{failed['task_id']}']")
        expect(row.locator("td.error-code")).to_have_text(failed["error_code"])
        expect(row.locator("td").nth(3)).to_have_text(failed["stage"] or "")
        expect(row.locator("td.url")).to_have_attribute("title", failed["url"])
        expect(row.locator("td.url")).to_have_text(failed["url"].split("//", 1)[1])
        for chart in ("throughput", "stages", "tags"):
            expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
        for hidden in GEMINI_ONLY:  # not drawn, not asked for, no room taken
            expect(page.locator(hidden)).to_be_hidden()
            assert page.locator(hidden).bounding_box() is None
        expect(page.locator("#pool-offline")).to_be_visible()
        for chart in ("days", "hour"):
            expect(page.locator(f"#chart-{chart} canvas")).to_have_count(0)
        pool, queue = (page.locator(f"#{card}").bounding_box() for card in ("pool", "queue"))
        if width >= 1440:  # the pool's note fills the first row's hole, not a row of its own
            assert pool["y"] == queue["y"] and pool["width"] < width / 2
        expect(page.locator("#chart-tags .u-legend .u-label")).to_have_text(["tag", "tasks"])
        assert page.evaluate("""fetch('dashboard/favicon.svg').then(
            (r) => `${r.status} ${r.headers.get('content-type')}`)""").startswith(
            "200 image/svg+xml")
        assert page.locator("link[rel=icon]").get_attribute("href") == "dashboard/favicon.svg"

        page.click(f"#tasks tbody tr[data-task-id='{completed['task_id']}']")
        result = completed["result"]
        assert result["frames"]
        expect(page.locator("#detail-frames img")).to_have_count(len(result["frames"]))
        page.wait_for_function("""() => [...document.querySelectorAll('#detail-frames img')]
            .every((img) => img.complete && img.naturalWidth > 0)""")
        expect(page.locator("#detail-timeline .frame-tick")).to_have_count(len(result["frames"]))
        expect(page.locator("#detail-timeline .moment")).to_have_count(len(result["key_moments"]))
        expect(page.locator("#detail-url")).to_have_text(completed["url"])
        for view in VIEWS:
            page.locator(f"#{view}").screenshot(
                path=str(ARTIFACTS / f"dashboard-{view}-{width}.png"))
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
        fits(page, width)
        assert problems == []
    for view in VIEWS:
        assert (ARTIFACTS / f"dashboard-{view}-{width}.png").stat().st_size > 2_000


def test_key_buttons_ask_first_and_send_the_token(api_server, app_env) -> None:
    from playwright.sync_api import expect

    app_env(**GEMINI)
    with dashboard_page(api_server, 1440) as (page, problems):
        page.fill("#token", "dash-token")
        page.click("#save-token")
        first = page.locator("#keys tbody tr").first
        expect(first.locator("button")).to_have_text("disable")
        key_id = first.get_attribute("data-key-id")

        def status() -> str:
            accounts = api_get("/api/v1/accounts", AUTH).get_json()["data"]["accounts"]
            return next(a["status"] for a in accounts if a["key_id"] == key_id)

        page.once("dialog", lambda dialog: dialog.dismiss())
        first.locator("button").click()
        page.wait_for_timeout(300)
        assert status() == "active"
        page.once("dialog", lambda dialog: dialog.accept())
        first.locator("button").click()
        expect(first.locator("button")).to_have_text("enable")
        expect(first.locator("td").nth(1)).to_have_text("disabled")
        assert status() == "disabled"
        page.once("dialog", lambda dialog: dialog.accept())
        first.locator("button").click()
        expect(first.locator("button")).to_have_text("disable")
        assert status() == "active"
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#pool").screenshot(path=str(ARTIFACTS / "dashboard-keys.png"))
        # only the first call, made before the token was given, was refused
        assert [p for p in problems if "401" not in p] == []


def test_dashboard_with_no_task(bare_server) -> None:
    from playwright.sync_api import expect

    with dashboard_page(bare_server, 390) as (page, problems):
        expect(page.locator("#t-completed")).to_have_text("0")
        expect(page.locator("#tasks-empty")).to_be_visible()
        expect(page.locator("#stages-empty")).to_be_visible()
        expect(page.locator("#tags-empty")).to_be_visible()
        expect(page.locator("#chart-throughput canvas")).to_have_count(1)
        expect(page.locator("#chart-tags canvas")).to_have_count(0)
        expect(page.locator("#login")).to_be_hidden()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-empty.png"), full_page=True)
        fits(page, 390)
        assert problems == []


def test_dashboard_with_10000_tasks(api_server, app_env) -> None:
    from playwright.sync_api import expect

    app_env(API_TOKENS="")
    clone_completed(10_000)
    charts = api_get("/api/v1/stats/charts").get_json()["data"]
    assert sum(charts["throughput"]["completed"]) == 10_001
    assert sum(charts["throughput"]["failed"]) == 1
    assert len(charts["throughput"]["completed"]) == 1440
    assert charts["top_tags"][0]["count"] == 10_001  # every result of the last 24 h
    assert len(charts["top_tags"]) <= 20
    with dashboard_page(api_server, 1440) as (page, problems):
        expect(page.locator("#t-completed")).to_have_text("10001", timeout=15_000)
        expect(page.locator("#tasks tbody tr")).to_have_count(15)
        expect(page.locator("#chart-tags canvas")).to_have_count(1, timeout=15_000)
        over = page.locator("#chart-throughput .u-over").bounding_box()
        page.mouse.move(over["x"] + over["width"] / 2, over["y"] + over["height"] / 2)
        value = page.locator("#chart-throughput .u-legend .u-series").nth(1).locator(".u-value")
        expect(value).not_to_have_text("–")
        assert 0 < int(value.inner_text()) <= 10
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#charts").screenshot(path=str(ARTIFACTS / "dashboard-10000.png"))
        assert problems == []


def test_a_100_character_tag(api_server, app_env) -> None:
    from playwright.sync_api import expect

    app_env(API_TOKENS="")
    long_tag = "超长标签long" * 12 + "尾巴尾巴"  # 100 characters, little room to break
    assert len(long_tag) == 100
    [task_id] = clone_completed(1, tags=[long_tag, "short"])
    assert api_get("/api/v1/stats/charts").get_json()["data"]["top_tags"][0]["tag"] in (
        long_tag, "short")
    with dashboard_page(api_server, 390) as (page, problems):
        page.click(f"#tasks tbody tr[data-task-id='{task_id}']")
        expect(page.locator("#detail-tags li")).to_have_text([long_tag, "short"])
        expect(page.locator("#chart-tags canvas")).to_have_count(1)
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#latest").screenshot(path=str(ARTIFACTS / "dashboard-long-tag.png"))
        page.locator("#charts").screenshot(path=str(ARTIFACTS / "dashboard-long-tag-chart.png"))
        fits(page, 390)
        assert problems == []


def test_a_task_with_no_result(api_server, app_env) -> None:
    from playwright.sync_api import expect

    app_env(API_TOKENS="")
    tasks = api_get("/api/v1/tasks?limit=15").get_json()["data"]["tasks"]
    with dashboard_page(api_server, 390) as (page, problems):
        for task in (t for t in tasks if t["status"] != "completed"):
            page.click(f"#tasks tbody tr[data-task-id='{task['task_id']}']")
            expect(page.locator("#detail-id")).to_have_text(task["task_id"])
            expect(page.locator("#detail-summary")).to_contain_text(
                f"no result: {task['status']}")
            if task["error_code"]:
                expect(page.locator("#detail-summary")).to_contain_text(task["error_code"])
            expect(page.locator("#detail-tags li")).to_have_count(0)
            expect(page.locator("#detail-frames img")).to_have_count(0)
            expect(page.locator("#detail-timeline")).to_be_hidden()
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#latest").screenshot(path=str(ARTIFACTS / "dashboard-no-result.png"))
        assert problems == []


def test_an_api_that_answers_503(bare_server, app_env) -> None:
    from playwright.sync_api import expect

    app_env(REDIS_URL="redis://127.0.0.1:1/0")  # Redis is down from the start
    assert api_get("/api/v1/stats").status_code == 503
    with dashboard_page(bare_server, 390) as (page, problems):
        expect(page.locator("#banner")).to_contain_text("A backing service is down")
        expect(page.locator("#banner")).to_contain_text("redis is unavailable")
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#t-completed")).to_have_text("–")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-503.png"))
        fits(page, 390)
        # the browser notes each refused request; nothing in the page itself failed
        assert problems and all("status of 503" in p for p in problems), problems


def test_the_frame_route(api_server) -> None:
    """A stored frame as JPEG with the token; 401 without; 400 malformed; 404 unknown."""
    tasks = api_get("/api/v1/tasks", AUTH).get_json()["data"]["tasks"]
    completed = next(t for t in tasks if t["status"] == "completed")
    pending = next(t for t in tasks if t["status"] == "pending")
    base = f"/api/v1/task/{completed['task_id']}/frames"
    frames = completed["result"]["frames"]
    for index in range(len(frames)):
        response = api_get(f"{base}/{index}", AUTH)
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        assert response.data.startswith(b"\xff\xd8")
    assert api_get(f"{base}/0").status_code == 401
    cases = [(f"{base}/{len(frames)}", 404, "no frame"),
             (f"{base}/x1", 400, "index: malformed"), (f"{base}/-1", 400, "index: malformed"),
             (f"/api/v1/task/{uuid.uuid4()}/frames/0", 404, "no task"),
             ("/api/v1/task/not-an-id/frames/0", 400, "task_id: malformed"),
             (f"/api/v1/task/{pending['task_id']}/frames/0", 404, "0 stored frames")]
    for path, status, words in cases:
        response = api_get(path, AUTH)
        assert response.status_code == status, (path, response.data)
        assert words in response.get_json()["message"], (path, response.get_json())


def test_chart_data_and_the_tagger_in_stats(api_server) -> None:
    tasks = api_get("/api/v1/tasks", AUTH).get_json()["data"]["tasks"]
    completed = next(t for t in tasks if t["status"] == "completed")
    charts = api_get("/api/v1/stats/charts", AUTH).get_json()["data"]
    throughput = charts["throughput"]
    assert throughput["step_s"] == 60 and len(throughput["failed"]) == 1440
    assert sum(throughput["completed"][-2:]) == 1 and sum(throughput["failed"][-2:]) == 1
    assert sum(throughput["completed"]) == 1
    assert {t["tag"] for t in charts["top_tags"]} == set(completed["result"]["tags"][:20]) or (
        len(charts["top_tags"]) == 20)
    assert all(t["count"] == 1 for t in charts["top_tags"])
    assert set(completed["timings"]) <= set(charts["stages"])
    assert api_get("/api/v1/stats/charts").status_code == 401
    tagger = api_get("/api/v1/stats", AUTH).get_json()["data"]["tagger"]
    assert tagger == {"name": "local", "model": "local-visual-v1", "fallback_models": [],
                      "needs_keys": False}


# --- issue 33: labels, narrow tables, the task detail, search, batches, URLs, no key ----

LABEL_BOXES = """(id) => {
    // where uPlot drew each tick label, in CSS px of the chart's canvas: the layout rules
    // of uPlot 1.6.32 (vendored): a left axis ends its labels at _pos - tick - gap, a
    // right one starts them there, a bottom one centres them on the tick
    const u = charts[id];
    const ratio = window.devicePixelRatio || 1;
    const probe = document.createElement('canvas').getContext('2d');
    const boxes = [];
    u.axes.forEach((axis, index) => {
        if (!axis.show || !axis._values) return;
        probe.font = axis.font[0];
        const vertical = axis.side % 2 === 1;
        const lineHeight = axis.font[1] / ratio;
        axis._values.forEach((value, k) => {
            if (value === null || value === undefined || value === '') return;
            const lines = String(value).split('\\n');
            const w = Math.max(...lines.map((l) => probe.measureText(l).width)) / ratio;
            const at = u.valToPos(axis._splits[k], axis.scale)
                + (vertical ? u.bbox.top : u.bbox.left) / ratio;
            const offset = axis.ticks.size + axis.gap;
            let box;
            if (vertical) {
                const edge = axis.side === 3 ? axis._pos - offset : axis._pos + offset;
                box = axis.side === 3 ? {left: edge - w, right: edge}
                                      : {left: edge, right: edge + w};
                box.top = at - lineHeight / 2;
                box.bottom = at + lineHeight / 2;
            } else {
                box = {left: at - w / 2, right: at + w / 2, top: axis._pos + offset};
                box.bottom = box.top + lineHeight * lines.length;
            }
            boxes.push({axis: index, text: String(value), ...box});
        });
    });
    return {width: u.width, height: u.height, boxes};
}"""


def assert_labels_inside(page, chart: str) -> dict:
    """Every tick label of the chart lies inside its canvas (none cut at an edge), and the
    labels of one axis do not overlap."""
    drawn = page.evaluate(LABEL_BOXES, chart)
    assert drawn["boxes"], chart
    for box in drawn["boxes"]:
        assert box["left"] >= -0.5 and box["right"] <= drawn["width"] + 0.5, (chart, box)
        assert box["top"] >= -0.5 and box["bottom"] <= drawn["height"] + 0.5, (chart, box)
    for axis in {box["axis"] for box in drawn["boxes"]}:
        mine = [box for box in drawn["boxes"] if box["axis"] == axis]
        for a, b in zip(mine, mine[1:], strict=False):
            apart = (min(a["right"], b["right"]) <= max(a["left"], b["left"]) + 0.5
                     or min(a["bottom"], b["bottom"]) <= max(a["top"], b["top"]) + 0.5)
            assert apart, (chart, a, b)
    return drawn


@pytest.mark.parametrize("width", [390, 1440])
def test_chart_labels_fit_with_units_at_phone_and_desktop_width(api_server, app_env,
                                                                width: int) -> None:
    """A 10,000 ms stage is labelled whole and with its unit; stage names are written out;
    twenty tags (one of them 100 characters) stay readable at 390 px."""
    from playwright.sync_api import expect

    app_env(API_TOKENS="")
    slow = {"downloading": 900, "probing": 40, "extracting_frames": 10_400, "tagging": 2_300}
    long_tag = "超长标签long" * 12 + "尾巴尾巴"
    for n in range(20):
        clone_completed(20 - n, tags=[long_tag if n == 3 else f"标签{n:02d}号"], timings=slow)
    top = api_get("/api/v1/stats/charts").get_json()["data"]["top_tags"]
    assert len(top) == 20 and long_tag in {t["tag"] for t in top}
    with dashboard_page(api_server, width, height=1000) as (page, problems):
        expect(page.locator("#chart-tags canvas")).to_have_count(1, timeout=15_000)
        for chart in ("chart-throughput", "chart-stages", "chart-tags"):
            assert_labels_inside(page, chart)
        stages = page.evaluate("charts['chart-stages'].axes.map((a) => a._values)")
        assert "extracting_frames" in stages[0]  # written out, not "extracting_…"
        assert all(v == "0" or v.endswith((" s", " ms")) for v in stages[1])  # a unit each
        assert any(float(v.split()[0]) >= 10 for v in stages[1] if v.endswith(" s")), stages
        tags = page.evaluate("charts['chart-tags'].axes[0]._values")
        assert len(tags) == 20 and all(tags)
        assert any(t.endswith("…") and long_tag.startswith(t[:-1]) for t in tags)
        # the whole name is one hover away: the legend shows it
        page.locator("#chart-tags").scroll_into_view_if_needed()
        over = page.locator("#chart-tags .u-over").bounding_box()
        index = next(i for i, t in enumerate(top) if t["tag"] == long_tag)
        page.mouse.move(over["x"] + over["width"] / 2,
                        over["y"] + over["height"] * (index + 0.5) / len(top))
        expect(page.locator("#chart-tags .u-legend .u-series").first.locator(".u-value")
               ).to_have_text(long_tag)
        page.locator("#charts").screenshot(path=str(ARTIFACTS / f"dashboard-labels-{width}.png"))
        fits(page, width)
        assert problems == []


def visible_within(page, locator, width: int) -> None:
    """On screen horizontally: shown, and inside the viewport's width."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box


@pytest.mark.parametrize("width", [390, 1440])
def test_tables_show_their_key_columns_without_a_sideways_scroll(
        api_server, app_env, width: int) -> None:
    """Latest tasks (status, stage, error), key pool (status, last error) and batches
    (completed, failed) on screen at 390 px; a batch without failures is not drawn in the
    warning colour, one with a failure shows it in red."""
    from playwright.sync_api import expect

    from tests.test_batches import complete, fail

    app_env(API_TOKENS="", **GEMINI)
    services = get_services()
    pool = services.pool
    disabled = sorted(a["key_id"] for a in pool.stats()["accounts"])[0]
    pool.set_enabled(disabled, False)
    client = functions_framework.create_app("api", "main.py").test_client()
    batch_ids = []
    for name, fails in (("全部成功", 0), ("one failed", 1)):
        items = [{"url": f"https://cdn.example.com/{fails}/{n}.mp4", "platform": "rpa"}
                 for n in range(3)]
        data = client.post("/api/v1/batches", json={"name": name, "items": items}
                           ).get_json()["data"]
        batch_ids.append(data["batch"]["batch_id"])
        for n, item in enumerate(data["items"]):
            (fail if n < fails else complete)(services, item["task_id"])
    tasks = api_get("/api/v1/tasks?limit=15").get_json()["data"]["tasks"]
    failed = next(t for t in tasks if t["status"] == "failed" and t["stage"])
    with dashboard_page(api_server, width) as (page, problems):
        expect(page.locator("#batches tbody tr")).to_have_count(2)
        for table in ("#tasks", "#keys", "#batches"):
            wrapper = page.locator(f"{table}").locator("xpath=..")
            assert wrapper.evaluate("(e) => e.scrollWidth <= e.clientWidth"), table
        row = page.locator(f"#tasks tbody tr[data-task-id='{failed['task_id']}']")
        for index, text in ((2, "failed"), (3, failed["stage"]), (4, failed["error_code"])):
            visible_within(page, row.locator("td").nth(index), width)
            expect(row.locator("td").nth(index)).to_have_text(text)
        key = page.locator(f"#keys tbody tr[data-key-id='{disabled}']")
        visible_within(page, key.locator("td").nth(1), width)
        visible_within(page, key.locator("td").nth(5), width)
        expect(key.locator("td").nth(5)).to_have_text("disabled by an operator")
        for batch_id, fails in zip(batch_ids, (0, 1), strict=True):
            batch = page.locator(f"#batches tbody tr[data-batch-id='{batch_id}']")
            for index in (2, 3):
                visible_within(page, batch.locator("td").nth(index), width)
            expect(batch.locator("td").nth(3)).to_have_text(str(fails))
            colours = batch.evaluate("""(row) => [...row.querySelectorAll('*')].map((e) => {
                const style = getComputedStyle(e);
                return [style.color, style.backgroundColor]; }).flat()""")
            assert "rgb(217, 130, 43)" not in colours  # the warning colour (#d9822b)
            red = batch.locator(".bar span.failed")
            if fails:
                expect(red).to_have_count(1)
                assert red.evaluate("(e) => getComputedStyle(e).backgroundColor") == \
                    "rgb(179, 38, 30)"
                expect(batch.locator("td").nth(3)).to_have_class("status-failed")
            else:
                expect(red).to_have_count(0)
                expect(batch.locator("td").nth(3)).not_to_have_class("status-failed")
                expect(batch.locator(".bar")).to_have_class("bar batch done")
        for view in ("latest", "pool", "batches-card", "pool-history"):
            page.locator(f"#{view}").screenshot(
                path=str(ARTIFACTS / f"dashboard-tables-{view}-{width}.png"))
        fits(page, width)
        assert problems == []


DETAIL_IN_VIEW = """() => {
    const box = document.getElementById('task-detail').getBoundingClientRect();
    return box.top >= 0 && box.top < innerHeight - 40; }"""
"""The task detail's top is on screen (smooth scrolling: polled until it is)."""


@pytest.mark.parametrize("width", [390, 1440])
def test_the_task_detail_at_phone_and_desktop_width(api_server, app_env, media_server,
                                                     width: int) -> None:
    """Opening a task brings its detail on screen; a failed task shows no empty headings
    and a Retry button that re-queues it; a URL keeps its query string."""
    from playwright.sync_api import expect

    from shared.app.tasks import create_task
    from shared.tasks.models import CreateTaskRequest

    app_env(API_TOKENS="")
    signed = media_server.url("files/clip.mp4") + "?sig=a%2Fb&expires=1700000000&v=2"
    request = CreateTaskRequest.model_validate({"url": signed, "platform": "rpa"},
                                               context={"platforms": ["rpa"]})
    signed_id = create_task(get_services(), request)[0].task_id
    tasks = api_get("/api/v1/tasks?limit=15").get_json()["data"]["tasks"]
    failed = next(t for t in tasks if t["status"] == "failed")
    with dashboard_page(api_server, width, height=800) as (page, problems):
        page.evaluate("window.scrollTo(0, 0)")
        row = page.locator(f"#tasks tbody tr[data-task-id='{failed['task_id']}']")
        row.click()
        expect(page.locator("#detail-id")).to_have_text(failed["task_id"])
        page.wait_for_function(DETAIL_IN_VIEW)
        for heading in page.locator("#task-detail h4").all():
            expect(heading).to_be_hidden()  # no "Key moments" / "Key frames" over nothing
        expect(page.locator("#detail-moments-box")).to_be_hidden()
        expect(page.locator("#detail-frames-box")).to_be_hidden()
        expect(page.locator("#retry")).to_be_visible()
        expect(page.locator("#retry-force")).to_be_hidden()
        page.screenshot(path=str(ARTIFACTS / f"dashboard-detail-failed-{width}.png"))
        page.click("#retry")  # a 404 would fail the same way: refused, with a way to insist
        expect(page.locator("#retry-status")).to_contain_text("a retry would fail the same way")
        expect(page.locator("#retry-force")).to_be_visible()
        page.click("#retry-force")
        expect(page.locator("#retry-status")).to_have_text("re-queued (forced)")
        expect(page.locator("#retry-force")).to_be_hidden()
        expect(page.locator("#retry")).to_be_hidden()
        expect(page.locator("#detail-summary")).to_contain_text("no result: pending")
        assert api_get(f"/api/v1/task/{failed['task_id']}").get_json()["data"][
            "status"] == "pending"
        expect(row.locator("td").nth(2)).to_have_text("pending")  # the list was refreshed
        page.screenshot(path=str(ARTIFACTS / f"dashboard-detail-retried-{width}.png"))

        query = signed.split("?", 1)[1]
        cell = page.locator(f"#tasks tbody tr[data-task-id='{signed_id}'] td.url")
        expect(cell).to_contain_text(f"?{query}")
        visible_within(page, cell.locator("span"), width)
        assert cell.locator("span").evaluate(
            "(e) => e.scrollHeight <= e.clientHeight + 1")  # not clipped by the 3-line clamp
        page.evaluate("window.scrollTo(0, 0)")
        cell.click()
        expect(page.locator("#detail-url")).to_have_text(signed)
        expect(page.locator("#detail-url")).to_have_attribute("href", signed)
        page.wait_for_function(DETAIL_IN_VIEW)
        completed = next(t for t in tasks if t["status"] == "completed")
        page.evaluate("window.scrollTo(0, 0)")
        page.click(f"#tasks tbody tr[data-task-id='{completed['task_id']}']")
        expect(page.locator("#detail-frames-box h4")).to_be_visible()
        expect(page.locator("#detail-moments-box h4")).to_be_visible()
        expect(page.locator("#detail-retry")).to_be_hidden()
        page.locator("#latest").screenshot(path=str(ARTIFACTS / f"dashboard-detail-{width}.png"))
        fits(page, width)
        assert [p for p in problems if "409" not in p] == []  # the refused retry


@pytest.mark.parametrize("width", [390, 1440])
def test_a_refused_retry_says_why_and_offers_retry_anyway(api_server, app_env,
                                                          width: int) -> None:
    """The retry API refuses a task that failed for a reason about the video (409, the
    usual envelope) unless `?force=true`: the button shows the message and offers to
    insist. The 409 is played by the browser here; the forced call reaches the API."""
    from playwright.sync_api import expect

    app_env(API_TOKENS="")
    tasks = api_get("/api/v1/tasks?limit=15").get_json()["data"]["tasks"]
    failed = next(t for t in tasks if t["status"] == "failed")
    refusal = ("task_id: the task failed with video_too_long, which a retry does not "
               "mend; retry with ?force=true to try anyway")
    sent: list[str] = []
    with dashboard_page(api_server, width) as (page, problems):
        page.on("request", lambda r: sent.append(r.url) if "/retry" in r.url else None)
        page.route(lambda url: url.endswith("/retry"), lambda route: route.fulfill(
            status=409, content_type="application/json",
            json={"code": 409, "message": refusal, "task_id": None, "data": {}}))
        page.click(f"#tasks tbody tr[data-task-id='{failed['task_id']}']")
        page.click("#retry")
        expect(page.locator("#retry-status")).to_have_text(refusal)
        expect(page.locator("#retry-force")).to_be_visible()
        expect(page.locator("#retry-force")).to_have_text("Retry anyway")
        assert api_get(f"/api/v1/task/{failed['task_id']}").get_json()["data"][
            "status"] == "failed"
        page.locator("#task-detail").screenshot(
            path=str(ARTIFACTS / f"dashboard-retry-refused-{width}.png"))
        page.click("#retry-force")
        expect(page.locator("#retry-status")).to_have_text("re-queued (forced)")
        assert [url.rsplit("/", 1)[1] for url in sent] == ["retry", "retry?force=true"]
        assert api_get(f"/api/v1/task/{failed['task_id']}").get_json()["data"][
            "status"] == "pending"
        assert [p for p in problems if "409" not in p] == []


@pytest.mark.parametrize("width", [390, 1440])
def test_a_search_with_no_hit_says_so(api_server, app_env, search_server, width: int) -> None:
    from playwright.sync_api import expect

    app_env(API_TOKENS="", ES_URL=search_server, ES_COMPAT_HEADERS="false",
            ES_INDEX_PREFIX=f"vtt-{uuid.uuid4().hex[:8]}")
    services = get_services()
    tasks = api_get("/api/v1/tasks?limit=15").get_json()["data"]["tasks"]
    completed = next(t for t in tasks if t["status"] == "completed")
    services.index.index_task(services.store.get(completed["task_id"]))
    services.index.refresh()
    with dashboard_page(api_server, width) as (page, problems):
        expect(page.locator("#search")).to_be_visible()
        page.fill("#search-q", "没有这个标签")
        page.click("#search-form button")
        expect(page.locator("#search-empty")).to_have_text(
            "no completed task matches “没有这个标签”")
        expect(page.locator("#search-results li")).to_have_count(0)
        page.locator("#search").screenshot(
            path=str(ARTIFACTS / f"dashboard-search-none-{width}.png"))
        page.fill("#search-q", completed["result"]["tags"][0])
        page.click("#search-form button")
        expect(page.locator("#search-results li")).to_have_count(1)
        expect(page.locator("#search-empty")).to_be_hidden()
        page.locator("#search-results li").click()  # its detail comes into view
        expect(page.locator("#detail-id")).to_have_text(completed["task_id"])
        page.wait_for_function(DETAIL_IN_VIEW)
        fits(page, width)
        assert problems == []


@pytest.mark.parametrize("width", [390, 1440])
def test_gemini_without_a_key_says_so_with_the_command(bare_server, app_env, redis_client,
                                                       width: int) -> None:
    """TAGGER=gemini and an empty pool: a banner with the import command; gone once a key
    is in the pool (the next refresh)."""
    from playwright.sync_api import expect

    app_env(**GEMINI)
    readme = (ROOT / "README.md").read_text()
    with dashboard_page(bare_server, width) as (page, problems):
        warning = page.locator("#warnings p[data-code='no_keys']")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("TAGGER=gemini but the key pool holds no key")
        expect(warning).to_contain_text("no_key_available")
        command = warning.locator("code")
        expect(command).to_have_text("python scripts/import_accounts.py --file "
                                     "google_accounts.json")
        assert command.inner_text() in readme  # the README's own command
        visible_within(page, warning, width)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-no-keys-{width}.png"))
        import_accounts(redis_client, [AccountEntry(
            api_key="AIzaSyNOW" + "0" * 30, daily_limit=10, minute_limit=2, username="u",
            password="pw", phone="", email="")])
        expect(page.locator("#warnings")).to_be_hidden(timeout=10_000)
        fits(page, width)
        assert problems == []


@pytest.mark.parametrize("width", [390, 1440])
def test_a_teams_key_sees_its_own_tasks_and_usage(api_server, app_env, redis_client,
                                                  media_server, width: int) -> None:
    """Issue 36: a team's read key opens the dashboard on its own records (the pool and
    the stats of all are an admin's); an admin key sees every team's tasks."""
    from playwright.sync_api import expect, sync_playwright

    from shared.app.tasks import create_task
    from shared.tasks.models import CreateTaskRequest
    from shared.teams.keys import KeyStore, Scope
    from tests.test_batches import complete

    pepper = "p" * 32
    app_env(API_TOKENS="dash-token", API_KEY_PEPPER=pepper)
    key = KeyStore(redis_client, pepper).create("news", frozenset({Scope.READ}))
    services = get_services()
    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa"},
        context={"platforms": ["rpa"]})
    ours = create_task(services, request, team="news")[0].task_id
    complete(services, ours)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{api_server}/dashboard")
        page.fill("#token", key)
        page.click("#save-token")
        expect(page.locator("#team-name")).to_have_text("team news")
        expect(page.locator("#tasks tbody tr")).to_have_count(1)
        expect(page.locator(f"#tasks tbody tr[data-task-id='{ours}']")).to_have_count(1)
        expect(page.locator("#team-total-tasks")).to_have_text("1")
        expect(page.locator("#team-days tbody tr").first.locator("td").nth(1)).to_have_text("1")
        for admin_only in ("#pool", "#queue", "#charts", "#task-counts"):
            expect(page.locator(admin_only)).to_be_hidden()
        expect(page.locator("#banner")).to_be_hidden()
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "test-artifacts" / f"dashboard-team-{width}.png"),
                        full_page=True)
        page.fill("#token", "dash-token")  # an admin key: every team's tasks, the pool
        page.click("#save-token")
        expect(page.locator("#team-name")).to_have_text("")
        expect(page.locator("#tasks tbody tr")).to_have_count(4)
        expect(page.locator("#pool")).to_be_visible()
        expect(page.locator("#team-usage")).to_be_hidden()
        browser.close()
