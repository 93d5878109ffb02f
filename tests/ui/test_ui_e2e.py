"""``recforge ui`` end to end in headless Chromium (Debian's ``chromium`` driven by Playwright for
Python through ``executable_path``; the browser is never downloaded).

Over ML-100K: every page opens; a new user rates five movies and every model's list changes,
each item with a reason; a malformed CSV upload shows the CLI's one-line error; every request the
pages make goes to 127.0.0.1. Screenshots at 1280x800 and 390x844 are kept as artefacts (in
``$RECFORGE_UI_ARTEFACTS``, else the test's temporary folder); with ``RECFORGE_UI_DOCS_IMG=DIR``
the two README screenshots are written there too (small palette PNGs).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("RECFORGE_CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.slow

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set RECFORGE_CHROMIUM)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                               "(pip install playwright; never `playwright install`: the test uses the system Chromium)")
pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

BAD_CSV = "user_id,item_id,rating\n1,2,3\n1,3,abc\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(app) -> tuple[str, object, threading.Thread]:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    return f"http://127.0.0.1:{port}", srv, thread


@pytest.fixture(scope="module")
def server(ml100k, tmp_path_factory):
    """The UI over ML-100K (item-knn-implicit and popularity) under uvicorn in a thread."""
    from recforge.ui import UIConfig, UIState, create_ui_app

    runs = tmp_path_factory.mktemp("runs")
    for name, model, proto, val in (("pop-loo", "popularity", "loo-full", 0.0253),
                                    ("iknn-loo", "item-knn-implicit", "loo-full", 0.0370)):
        folder = runs / name
        folder.mkdir()
        (folder / "run.json").write_text(
            '{"name": "%s", "model": "%s", "protocol": "%s", "metrics": {"NDCG@10": %s}, '
            '"timings": {"fit_seconds": 1.0}, "spec": {}}' % (name, model, proto, val))
    state = UIState.from_config(UIConfig(dataset="ml-100k", runs=str(runs)))
    base, srv, thread = _start(create_ui_app(state))
    yield base, state
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    env = os.environ.get("RECFORGE_UI_ARTEFACTS")
    folder = Path(env) if env else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--disable-default-apps"])
        yield b
        b.close()


def _context(browser, width: int, height: int, requests: list[str]):
    ctx = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                              service_workers="block")

    def guard(route):  # nothing may leave the machine: record and refuse anything not local
        if urlparse(route.request.url).hostname != "127.0.0.1":
            route.abort()
        else:
            route.continue_()

    ctx.route("**/*", guard)
    ctx.on("request", lambda req: requests.append(req.url))
    return ctx


def _rec_ids(page, slug: str) -> list[str]:
    return page.eval_on_selector_all(f"#recs-{slug} li.rec", "els => els.map(e => e.dataset.item)")


def _docs_png(src: Path, dest: Path, width: int) -> None:
    """A small copy for the README: scaled to ``width`` and reduced to a 64-colour palette."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


@pytest.mark.realdata
def test_ui_in_a_real_browser(server, browser, artefacts, tmp_path):
    from recforge.data import load_file
    from recforge.errors import DataError

    base, state = server
    requests: list[str] = []
    t0 = time.time()
    ctx = _context(browser, 1280, 800, requests)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # every page opens, with its heading and the navigation
    for href, label in [("/data", "Data"), ("/leaderboard", "Leaderboard"), ("/user", "User drill-down"),
                        ("/embeddings", "Embeddings"), ("/ops", "Operations")]:
        resp = page.goto(base + href)
        assert resp.status == 200, href
        assert page.locator("h1").inner_text().startswith(label)
        assert page.locator('nav a[aria-current="page"]').inner_text() == label
        if href == "/data":  # keyboard: the skip link is the first stop and moves focus to the content
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.id") == "main"
        if href == "/leaderboard":
            assert page.locator("td.protocol").count() == 2  # the protocol on every row
        page.screenshot(path=str(artefacts / f"{href.strip('/')}-1280x800.png"))

    # Try it: a new user rates five movies; both lists change and every item shows a reason
    page.goto(base + "/try")
    slugs = [m.slug for m in state.served]
    for slug in slugs:
        page.wait_for_function(f"document.querySelectorAll('#recs-{slug} li.rec').length === 10")
    before = {s: _rec_ids(page, s) for s in slugs}
    page.fill("#q", "star")
    page.press("#q", "Enter")
    # the page searched once on load (popular items): wait for the list that answers "star"
    page.wait_for_function("document.querySelector('#results').dataset.query === 'star'")
    titles = page.eval_on_selector_all("#results .res-title", "els => els.map(e => e.textContent)")[:5]
    assert len(titles) == 5
    for j, title in enumerate(titles):
        stamp = page.get_attribute("#try", "data-refreshed")
        page.get_by_role("button", name=f"Rate {title} 5 of 5").click()
        page.wait_for_function(f"document.querySelector('#try').dataset.refreshed !== '{stamp}'")
        assert page.locator("#events li").count() == j + 1
    assert "Lists updated" in page.locator("#event-status").inner_text()
    for slug in slugs:
        after = _rec_ids(page, slug)
        assert len(after) == 10 and after != before[slug], slug
        reasons = page.eval_on_selector_all(
            f"#recs-{slug} li.rec", "els => els.map(e => Array.from(e.querySelectorAll('.reason')).map(r => r.textContent))")
        assert all(r and all(t.strip() for t in r) for r in reasons), slug
    first_reasons = page.locator(f"#recs-{slugs[0]} li.rec").first.locator(".reason").all_inner_texts()
    assert any(t.startswith("because you liked") for t in first_reasons)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artefacts / "try-1280x800.png"))

    # a malformed CSV: the CLI's one-line error in the page
    ref = tmp_path / "bad.csv"
    ref.write_text(BAD_CSV)
    with pytest.raises(DataError) as exc:
        load_file(ref, rating="rating")
    want = "error: " + str(exc.value).replace(str(ref), "bad.csv")
    page.goto(base + "/data")
    page.set_input_files("#file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD_CSV.encode()}])
    page.fill("#rating_col", "rating")
    page.get_by_role("button", name="Upload and check").click()
    err = page.locator("#upload-error")
    err.wait_for()
    assert err.inner_text() == want
    page.screenshot(path=str(artefacts / "data-error-1280x800.png"))

    # the phone viewport: no horizontal scrolling of the page itself
    phone = _context(browser, 390, 844, requests)
    ppage = phone.new_page()
    ppage.goto(base + "/try")
    ppage.wait_for_function(f"document.querySelectorAll('#recs-{slugs[0]} li.rec').length === 10")
    assert ppage.evaluate("document.documentElement.scrollWidth") <= 390
    ppage.screenshot(path=str(artefacts / "try-390x844.png"))
    for href in ("/data", "/leaderboard", "/ops"):
        ppage.goto(base + href)
        assert ppage.evaluate("document.documentElement.scrollWidth") <= 390, href  # wide tables scroll inside
        ppage.screenshot(path=str(artefacts / f"{href.strip('/')}-390x844.png"))
    phone.close()
    ctx.close()

    assert not errors, errors
    assert requests and all(urlparse(u).hostname == "127.0.0.1" for u in requests), \
        sorted({u for u in requests if urlparse(u).hostname != "127.0.0.1"})
    docs = os.environ.get("RECFORGE_UI_DOCS_IMG")
    if docs:
        Path(docs).mkdir(parents=True, exist_ok=True)
        _docs_png(artefacts / "try-1280x800.png", Path(docs) / "ui-try-desktop.png", 900)
        _docs_png(artefacts / "try-390x844.png", Path(docs) / "ui-try-phone.png", 300)
    print(f"browser part {time.time() - t0:.1f} s; screenshots in {artefacts}")


def test_embedding_map_draws_in_the_browser(browser, tmp_path, monkeypatch, artefacts):
    """The map page over a tiny catalogue with ALS vectors (projection: the first two coordinates,
    so no UMAP runs): plotly.js from this app draws every item and the user's items on top."""
    import numpy as np

    from recforge.config import FitOptions
    from recforge.models.registry import make_model
    from recforge.ui import pages_insights
    from recforge.ui.app import create_ui_app
    from recforge.ui.served import serve_models
    from recforge.ui.state import UIConfig, UIState

    from .conftest import tiny_data

    data = tiny_data()
    model = make_model("ials", {"embedding_size": 4, "epochs": 2}).fit(data, FitOptions(seed=0, threads=1))
    monkeypatch.setattr(pages_insights, "item_coords",
                        lambda m: (m.items_.ids, np.asarray(m.embeddings()[1])[:, :2].astype(float)))
    served = serve_models([("ials", model, None)], item_features=data.item_features, database=tmp_path / "e.db")
    state = UIState(UIConfig(k=5), data=data, dataset_name="tiny", served=served, workdir=tmp_path)
    base, srv, thread = _start(create_ui_app(state))
    requests: list[str] = []
    ctx = _context(browser, 1280, 800, requests)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(base + "/embeddings?user=7")
        page.wait_for_selector("#map .main-svg", timeout=30000)  # the page reloads itself once the job is done
        n_user = int(np.sum(data.user_idx == data.users.index_one(7)))
        assert page.locator("#map .point").count() == data.n_items + n_user
        legend = page.eval_on_selector_all("#map .legendtext", "els => els.map(e => e.textContent)")
        assert legend == ["Action", "Drama", "this user's items"]
        page.screenshot(path=str(artefacts / "embeddings-map-1280x800.png"))
    finally:
        ctx.close()
        srv.should_exit = True
        thread.join(10)
    assert not errors, errors
    assert any(u.endswith("/vendor/plotly.min.js") for u in requests)
    assert all(urlparse(u).hostname == "127.0.0.1" for u in requests)
