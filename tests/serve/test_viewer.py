"""The run viewer in a real headless chromium (playwright): a k=4 run and its vote, a run
started from the text box whose steps arrive live, and `tinyact view` on a saved JSONL.

Set TINYACT_VIEWER_SCREENSHOT=docs/viewer.png to (re)write the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.serve.helpers import uvicorn_server
from tinyact.agents.trajectory import append_jsonl
from tinyact.models.engines import ReplayEngine
from tinyact.models.engines.scripted import ScriptedEngine, act
from tinyact.schema import Trajectory
from tinyact.serve import RunService, ServerConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

VOTE_SCRIPT = [
    [act("x = 6 * 7\nprint(x)", "multiply"), act("print(6 * 7)", "print it"), act("print(41)", "a guess"),
     act("print(sum([6] * 7))", "add sevens")],
    [act("final_answer(42)", "done")] * 4,
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (make system-deps)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


def k4_run(url: str) -> str:
    r = httpx.post(f"{url}/v1/runs", json={"task": "What is 6 * 7?", "samples": 4, "temperature": 0.5},
                   timeout=60)
    assert r.status_code == 200 and r.json()["answer"] == 42, r.text
    return r.json()["id"]


def test_a_k4_run_shows_candidates_side_by_side_and_the_vote(browser, tmp_path):
    service = RunService(ReplayEngine(VOTE_SCRIPT), config=ServerConfig(exec_timeout=60))
    with uvicorn_server(service) as url:
        run_id = k4_run(url)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.click(f'#runs li[data-run-id="{run_id}"]')
        step0 = page.locator('article.step[data-step="0"]')
        step0.wait_for()
        assert step0.locator(".candidate").count() == 4
        vote = step0.locator(".vote").inner_text()
        assert "vote over 4 candidates (A: 3, B: 1)" in vote and "group A wins with 3 of 4" in vote
        chosen = step0.locator(".candidate.chosen")
        assert chosen.count() == 1 and chosen.get_attribute("data-candidate") == "0"
        assert "3/4 votes" in chosen.inner_text() and "1/4 votes" in step0.locator('[data-candidate="2"]').inner_text()
        assert step0.locator(".candidate .hljs-built_in, .candidate .hljs-number").count() > 0  # highlighted code
        assert "model " in step0.locator(".timings").inner_text() and "tokens" in step0.locator(".timings").inner_text()
        assert page.locator("#answer").inner_text() == "Answer: 42"
        assert "undefined" not in page.locator("#run").inner_text() and " tokens · k=4" in page.inner_text(".run-head")
        if os.environ.get("TINYACT_VIEWER_SCREENSHOT"):
            page.screenshot(path=os.environ["TINYACT_VIEWER_SCREENSHOT"], full_page=False)
        page.close()


def test_with_api_keys_the_page_asks_for_one(browser):
    service = RunService(ReplayEngine(VOTE_SCRIPT), config=ServerConfig(exec_timeout=60, api_keys=("sk-view",)))
    with uvicorn_server(service) as url:
        r = httpx.post(f"{url}/v1/runs", headers={"Authorization": "Bearer sk-view"},
                       json={"task": "What is 6 * 7?", "samples": 4, "temperature": 0.5}, timeout=60)
        assert r.status_code == 200
        assert httpx.get(f"{url}/v1/runs").status_code == 401  # the data needs the key
        page = browser.new_page()
        page.goto(url + "/")  # the page itself holds no data
        page.locator("#key-form").wait_for()
        assert page.locator("#runs li").count() == 0
        page.fill("#key", "sk-view")
        page.click("#key-form button")
        page.locator(f'#runs li[data-run-id="{r.json()["id"]}"]').wait_for()
        page.close()


def test_start_a_run_from_the_text_box_and_watch_steps_arrive(browser):
    scripts = {"count slowly to three": [
        act("import time\ntime.sleep(1.5)\nprint(1)", "one, after a pause"),
        act("time.sleep(1.5)\nprint(2)", "two, after another pause"),
        act("final_answer(3)", "and three is the answer"),
    ]}
    service = RunService(ScriptedEngine(scripts, token_delay=0.05), config=ServerConfig(exec_timeout=60))
    with uvicorn_server(service) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#task", "count slowly to three")
        page.click("#new-run button[type=submit]")
        page.locator('article.step[data-step="0"]').wait_for(timeout=30_000)
        assert page.locator("#run-status").inner_text() in ("queued", "running")  # it arrived while running
        assert page.locator("#answer").inner_text() == ""
        page.locator("article.step.live").wait_for(timeout=30_000)  # model text while it is generated
        page.locator("#answer").filter(has_text="Answer: 3").wait_for(timeout=30_000)
        assert page.locator("article.step:not(.live)").count() == 3
        assert page.locator("#run-status").inner_text() == "finished"
        assert page.locator("#runs li").first.locator(".badge").inner_text() == "finished"
        page.close()


def test_cancel_a_running_run_from_the_page(browser):
    scripts = {"sleep a long time": [act("import time\ntime.sleep(120)", "wait"), act("final_answer(1)")]}
    service = RunService(ScriptedEngine(scripts), config=ServerConfig(exec_timeout=300))
    with uvicorn_server(service) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#task", "sleep a long time")
        page.click("#new-run button[type=submit]")
        page.locator("#cancel").click(timeout=30_000)
        page.locator("#run-status").filter(has_text="finished").wait_for(timeout=30_000)
        assert "cancelled" in page.inner_text(".run-head") and page.locator("#cancel").count() == 0
        page.close()


@contextmanager
def file_viewer(path: Path) -> Iterator[str]:
    import uvicorn

    from tinyact.serve.viewer import file_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(file_app(path), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_view_saved_runs_from_a_jsonl_file(browser, tmp_path):
    service = RunService(ReplayEngine(VOTE_SCRIPT), config=ServerConfig(exec_timeout=60))
    with uvicorn_server(service) as url:
        run_id = k4_run(url)
        trajectory = httpx.get(f"{url}/v1/runs/{run_id}").json()["trajectory"]
    saved = tmp_path / "runs.jsonl"
    append_jsonl(saved, [Trajectory.model_validate(trajectory)])
    with file_viewer(saved) as url:
        page = browser.new_page()
        page.goto(f"{url}/?run={trajectory['id']}")
        page.locator('article.step[data-step="1"]').wait_for()
        assert "saved runs:" in page.locator("#source").inner_text()
        assert page.locator("#new-run").is_hidden()  # read-only
        assert "group A wins with 3 of 4" in page.locator('article.step[data-step="0"] .vote').inner_text()
        assert httpx.post(f"{url}/v1/runs", json={"task": "x"}).status_code == 405
        page.close()
