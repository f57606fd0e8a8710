"""``lit-edge review`` in a real browser: Debian's Chromium, driven by Playwright, against the real
server in its own process, on a real database of real JPEGs.

What is checked is what people rely on: keys do what the page says, every action is in the
database when its answer arrives (and survives a restart and a SIGKILL), two reviewers at once
lose nothing, and the machine's predictions are never touched. Skipped, visibly, where Chromium or
Playwright is missing.
"""

from __future__ import annotations

import signal
import sqlite3

import pytest

from bundle_factory import make_bundle
from lit_edge.db.reader import Reader
from review_fixtures import (
    ReviewServer,
    browser,  # noqa: F401 (a fixture)
    field_db,
    open_page,
    press,
    selected_id,
    settle,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def field(tmp_path):
    db = field_db(tmp_path, n=12)
    bundle = make_bundle(tmp_path / "bundle")
    return db, bundle, tmp_path / "home"


def _current(db) -> dict[int, tuple[str, str]]:
    with Reader(db) as r:  # the reader every export uses
        return {m: (a.label, a.reviewer) for m, a in r.current_annotations().items()}


def _rows(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _grid_ids(page) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all("#grid .photo", "els => els.map(e => e.dataset.id)")]


def _labels(page) -> dict[int, str]:
    pairs = page.eval_on_selector_all("#grid .photo", "els => els.map(e => [e.dataset.id, e.dataset.label])")
    return {int(i): label for i, label in pairs}


def test_keyboard_review_of_a_queue(field, browser):  # noqa: F811
    db, bundle, home = field
    predictions = _rows(db, "SELECT * FROM predictions ORDER BY id")
    by_score = [i for (i,) in _rows(db, "SELECT id FROM media ORDER BY top_score, id")]
    preds = {}
    for media_id, name in _rows(
        db, "SELECT media_id, scientific_name FROM predictions ORDER BY media_id, position"
    ):
        preds.setdefault(media_id, []).append(name)
    top = dict(_rows(db, "SELECT id, top_name FROM media"))

    with ReviewServer(db, home, "--bundle", str(bundle)) as srv:
        page = open_page(browser, srv.url)
        assert _grid_ids(page) == by_score  # the queue: lowest score first
        assert selected_id(page) == by_score[0]
        press(page, "2", "Enter", "b", "h", "v", "u")
        page.keyboard.press("/")
        page.keyboard.type("sea bl")  # a common name, found by its words
        page.wait_for_selector("#search-results li[data-label='Caerulea mare']")
        press(page, "Enter")
        page.keyboard.press("/")
        page.keyboard.type("Lynx pardinus, Iberian lynx")  # a species the bundle does not hold
        press(page, "Enter")
        assert selected_id(page) == by_score[8]
        press(page, "1", "z")  # taken, then undone: unverified again, and selected again
        assert selected_id(page) == by_score[8]
        expected = {
            by_score[0]: preds[by_score[0]][1],
            by_score[1]: top[by_score[1]],
            by_score[2]: "blank",
            by_score[3]: "human",
            by_score[4]: "vehicle",
            by_score[5]: "unknown",
            by_score[6]: "Caerulea mare",
            by_score[7]: "Lynx pardinus",
        }
        assert _labels(page) == {i: expected.get(i, "") for i in by_score}
        page.wait_for_function(
            "() => document.getElementById('progress-text').textContent.startsWith('8 of 12')"
        )
        assert page.errors == []
    assert _current(db) == {i: (label, "ann") for i, label in expected.items()}
    common = dict(_rows(db, "SELECT label, common_name FROM annotations"))
    assert common["Lynx pardinus"] == "Iberian lynx" and common["Caerulea mare"] == "sea blue"
    kinds = dict(_rows(db, "SELECT label, observation_type FROM annotations"))
    assert kinds["blank"] == "blank" and kinds["human"] == "human" and kinds["Lynx pardinus"] == "animal"
    # the undone one is history: a row and its retraction
    assert _rows(db, f"SELECT retracted FROM annotations WHERE media_id = {by_score[8]} ORDER BY id") == [
        (0,),
        (1,),
    ]
    assert _rows(db, "SELECT * FROM predictions ORDER BY id") == predictions  # never overwritten


def test_a_whole_event_is_verified_at_once(field, browser):  # noqa: F811
    db, bundle, home = field
    folders = {}
    for media_id, path in _rows(db, "SELECT id, path FROM media ORDER BY id"):
        folders.setdefault(path.rsplit("/", 1)[0], []).append(media_id)
    (a_ids, b_ids) = folders.values()  # photos 20 s apart: one event per folder
    top = dict(_rows(db, "SELECT id, top_name FROM media"))
    with ReviewServer(db, home, "--bundle", str(bundle)) as srv:
        page = open_page(browser, srv.url, view="events")
        page.wait_for_selector("#grid .unit.event")
        event = page.get_attribute("#grid .unit.selected", "data-event")
        assert event.startswith("siteA-")
        suggestion = page.get_attribute("#suggestions li:first-child", "data-name")
        press(page, "1")  # the event's first suggestion, for all six photos
        press(page, "]")  # next folder
        page.wait_for_selector("#grid .unit.selected[data-event^='siteB-']")
        press(page, "Enter")  # each photo's own machine decision
        assert page.errors == []
    current = _current(db)
    assert {i: current[i][0] for i in a_ids} == dict.fromkeys(a_ids, suggestion)
    assert {i: current[i][0] for i in b_ids} == {i: top[i] for i in b_ids}


def test_a_correction_survives_restarts(field, browser):  # noqa: F811
    db, bundle, home = field
    with ReviewServer(db, home, "--bundle", str(bundle)) as srv:
        page = open_page(browser, srv.url)
        first = selected_id(page)
        press(page, "1")
        page.close()
        assert srv.stop() == 0  # SIGTERM: a clean stop
    label1 = _current(db)[first][0]
    with ReviewServer(db, home, "--bundle", str(bundle), reviewer="bob") as srv:
        page = open_page(browser, srv.url, status="verified")
        assert _grid_ids(page) == [first] and _labels(page) == {first: label1}
        press(page, "b")  # bob corrects ann
        assert srv.stop() == 0
    with ReviewServer(db, home, "--bundle", str(bundle)) as srv:
        page = open_page(browser, srv.url, status="verified")
        assert _labels(page) == {first: "blank"}
        page.wait_for_selector("#history li", state="attached")
        history = page.eval_on_selector_all("#history li", "els => els.map(e => e.textContent)")
        assert history[0].startswith(f"{label1} ") and "ann" in history[0]
        assert history[1].startswith("blank") and "bob" in history[1]
        detail = srv.get(f"/api/media/{first}")
        assert detail["annotation"]["label"] == "blank" and detail["annotation"]["reviewer"] == "bob"
        assert [a["label"] for a in detail["history"]] == [label1, "blank"]


def test_two_reviewers_at_once_lose_nothing(field, browser):  # noqa: F811
    """Two people, two browsers, each on its own server process, one database file."""
    db, bundle, home = field
    with (
        ReviewServer(db, home, "--bundle", str(bundle), reviewer="ann") as one,
        ReviewServer(db, home, "--bundle", str(bundle), reviewer="bob") as two,
    ):
        ann_page = open_page(browser, one.url)
        bob_page = browser.new_context().new_page()
        bob_page.goto(two.url)
        bob_page.wait_for_selector("body[data-ready='1']")
        assert _grid_ids(ann_page) == _grid_ids(bob_page)
        for _ in range(6):  # interleaved, without waiting: the writes overlap on the server side
            ann_page.keyboard.press("1")
            bob_page.keyboard.press("b")
        settle(ann_page)
        settle(bob_page)
        queue = _grid_ids(ann_page)
        rows = _rows(db, "SELECT media_id, reviewer, replaces, id FROM annotations ORDER BY id")
        assert len(rows) == 12  # twelve key presses, twelve rows
        for media_id in queue[:6]:
            chain = [r for r in rows if r[0] == media_id]
            assert sorted(r[1] for r in chain) == ["ann", "bob"]
            assert chain[0][2] is None and chain[1][2] == chain[0][3]  # serialised, not siblings
        current = _current(db)
        assert set(current) == set(queue[:6])
        # each page learns the other's word within a few seconds (its poll), and shows the database's
        want = {i: current.get(i, ("", ""))[0] for i in queue}
        for page in (ann_page, bob_page):
            page.wait_for_function(
                "want => Object.entries(want).every(([id, l]) => "
                "document.querySelector(`#grid .photo[data-id='${id}']`).dataset.label === l)",
                arg={str(k): v for k, v in want.items()},
                timeout=15000,
            )


def test_sigkill_keeps_every_committed_action(field, browser):  # noqa: F811
    db, bundle, home = field
    with ReviewServer(db, home, "--bundle", str(bundle)) as srv:
        page = open_page(browser, srv.url)
        answered = []
        page.on(
            "response",
            lambda r: r.url.endswith(("/api/annotate", "/api/accept")) and r.ok and answered.append(r),
        )
        press(page, "1", "b", "Enter", "h")  # all four answered
        assert len(answered) == 4
        for key in ("v", "u", "1", "2", "b"):  # then keys in flight when the server dies
            page.keyboard.press(key)
        page.wait_for_timeout(150)
        srv.stop(signal.SIGKILL)
        settle(page)  # the page gets its errors back; nothing hangs
    n = len(answered)
    assert n >= 4
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = conn.execute("SELECT count(*) FROM annotations").fetchone()[0]
    conn.close()
    assert kept >= n  # every answered action is there (one in flight may be too)
    assert kept <= 9
