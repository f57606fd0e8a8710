"""The review server over HTTP (a real process), its thumbnails, its name search and its CLI."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.bundle import Label
from lit_edge.cli.app import app
from lit_edge.db.annotations import AnnotationError
from lit_edge.review.names import NameIndex, parse_new
from review_fixtures import ReviewServer, Shot, field_db, record


def _req(srv: ReviewServer, path: str, body=None, token: str | None = "page", host: str | None = None):
    """(status, content type, bytes) of one request; ``token='page'`` sends the page's own token."""
    headers = {"Content-Type": "application/json"}
    if token == "page":
        html = urllib.request.urlopen(srv.url, timeout=30).read().decode()
        token = html.split('name="review-token" content="', 1)[1].split('"', 1)[0]
    if token:
        headers["X-Review-Token"] = token
    if host:
        headers["Host"] = host
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(srv.url + path.lstrip("/"), data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


@pytest.fixture
def server(tmp_path):
    db = field_db(tmp_path, n=4)
    with ReviewServer(db, tmp_path / "home", "--bundle", str(make_bundle(tmp_path / "bundle"))) as srv:
        yield srv, db, tmp_path


def test_writes_need_the_page_token_and_this_host(server):
    srv, db, _ = server
    body = {"media_ids": [1], "label": "blank"}
    status, _, text = _req(srv, "api/annotate", body, token=None)
    assert status == 403 and "token" in json.loads(text)["error"]
    status, _, text = _req(srv, "api/annotate", body, token="forged")
    assert status == 403
    host = srv.url.split("//")[1].rstrip("/")
    status, _, text = _req(srv, "api/info", host="evil.example:80")
    assert status == 403 and "not this review server" in json.loads(text)["error"]
    status, _, _ = _req(srv, "api/info", host=host)
    assert status == 200
    status, _, text = _req(srv, "api/annotate", body)
    assert status == 200 and json.loads(text)["written"][0]["annotation"]["label"] == "blank"


def test_bad_requests_get_one_clear_message(server):
    srv, _, _ = server
    cases = [
        ("api/page?order=sideways", None, 400, "order 'sideways'"),
        ("api/page?after=garbage", None, 400, "not a page cursor"),
        ("api/page?limit=0", None, 400, "limit=0 is out of range"),
        ("api/events", None, 400, "missing query parameter 'folder'"),
        ("api/annotate", b"{not json", 400, "expected a JSON object"),
        ("api/annotate", {"media_ids": [], "label": "blank"}, 400, "non-empty list"),
        ("api/annotate", {"media_ids": [999], "label": "blank"}, 409, "no media row with id 999"),
        ("api/annotate", {"media_ids": [1], "label": "Lynx 2", "new": True}, 409, "is not a name"),
        ("api/undo", {"annotation_ids": [12345]}, 409, "no annotation with id 12345"),
        ("api/media/999", None, 404, "no reviewable media row 999"),
    ]
    for path, body, status, message in cases:
        got, kind, text = _req(srv, path, body)
        assert (got, kind) == (status, "application/json"), (path, text)
        assert message in json.loads(text)["error"], (path, text)


def test_thumbnails_are_cached_and_photos_never_change(server):
    srv, db, tmp_path = server
    item = srv.get("api/page?status=all")["items"][0]
    path = Path(srv.get(f"api/media/{item['id']}")["path"])
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    status, kind, data = _req(srv, f"thumb/{item['id']}")
    assert (status, kind) == (200, "image/jpeg")
    thumb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == 320  # the photo is 320 x 240: never enlarged, never more
    cached = list((tmp_path / "home" / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == data
    _req(srv, f"thumb/{item['id']}?size=preview")
    assert len(list((tmp_path / "home" / "thumbs").rglob("*.jpg"))) == 2
    status, kind, full = _req(srv, f"photo/{item['id']}")
    assert (status, kind) == (200, "image/jpeg") and full == path.read_bytes()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    status, kind, text = _req(srv, f"thumb/{item['id']}?size=huge")
    assert status == 400


def test_missing_tiff_and_clip_media_are_shown_or_explained(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    tiff = cam / "scan.tif"
    cv2.imwrite(str(tiff), np.full((60, 80, 3), (0, 0, 255), np.uint8))  # BGR: red
    clip = cam / "clip.avi"
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for colour in [(255, 0, 0)] * 5 + [(0, 255, 0)] * 5:  # BGR: 5 blue frames, then 5 green
        out.write(np.full((48, 64, 3), colour, np.uint8))
    out.release()
    gone = write_jpeg(cam / "gone.jpg", solid((10, 10, 10)))
    shots = [
        Shot(tiff, None, "Rubra rosea", "species", 0.9, []),
        Shot(clip, None, "Viridis silva", "species", 0.8, [], kind="clip"),
        Shot(clip, None, "Viridis silva", "species", 0.3, [], kind="frame", frame_index=1),
        Shot(clip, None, "Viridis silva", "species", 0.9, [], kind="frame", frame_index=7),
        Shot(gone, None, "Rubra rosea", "species", 0.5, []),
    ]
    ids = record(tmp_path / "d.db", shots)
    gone.unlink()
    with ReviewServer(tmp_path / "d.db", tmp_path / "home") as srv:
        status, kind, data = _req(srv, f"photo/{ids[0]}")  # a TIFF: the browser gets a JPEG
        assert (status, kind) == (200, "image/jpeg")
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert rgb.shape[:2] == (60, 80) and rgb.reshape(-1, 3).mean(0).argmax() == 0  # red
        status, kind, data = _req(srv, f"thumb/{ids[1]}")  # a clip: its best frame (index 7, green)
        assert (status, kind) == (200, "image/jpeg")
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert rgb.reshape(-1, 3).mean(0).argmax() == 1
        status, kind, data = _req(srv, f"thumb/{ids[4]}")
        assert (status, kind) == (404, "image/svg+xml") and b"file not found" in data
        # sampled frames are evidence, not something to label
        assert _req(srv, f"thumb/{ids[2]}")[0] == 404
        assert {i["id"] for i in srv.get("api/page?status=all")["items"]} == {ids[0], ids[1], ids[4]}


def test_name_search():
    labels = [
        Label(0, "Vulpes vulpes", "red fox"),
        Label(1, "Vulpes lagopus", "Arctic fox"),
        Label(2, "Lynx lynx", "Eurasian lynx"),
        Label(3, "blank", ""),
    ]
    names = NameIndex([lab for lab in labels if not lab.is_blank], {"Vulpes lagopus": ("Alopex lagopus",)})
    assert [n.label for n in names.search("fox")] == ["Vulpes vulpes", "Vulpes lagopus"]
    assert [n.label for n in names.search("arctic")] == ["Vulpes lagopus"]
    (hit,) = names.search("alopex")
    assert hit.label == "Vulpes lagopus" and hit.matched == "Alopex lagopus"
    assert names.search("b")[0].label == "blank"  # the outcomes come first among equals
    assert names.search("lynx lynx")[0].label == "Lynx lynx"
    assert names.search("zebra") == []
    new = parse_new("lynx pardinus,  Iberian   lynx")
    assert (new.label, new.common_name, new.kind) == ("Lynx pardinus", "Iberian lynx", "new")
    for bad in ("", "123", ", common only", "Lynx 2"):
        with pytest.raises(AnnotationError):
            parse_new(bad)


def test_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(app, ["review", str(tmp_path / "nope.db"), "--no-browser"])
    assert (
        r.exit_code == 2 and r.output.startswith("error: database not found") and "Traceback" not in r.output
    )
    (tmp_path / "junk.db").write_text("not a database")
    r = CliRunner().invoke(app, ["review", str(tmp_path / "junk.db"), "--no-browser"])
    assert r.exit_code == 2 and "not a lit-edge detection database" in r.output
    r = CliRunner().invoke(app, ["review", "--help"])
    assert r.exit_code == 0 and "--no-browser" in r.output and "z undo" in r.output


def test_a_busy_port_is_one_line(tmp_path):
    db = field_db(tmp_path, n=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(app, ["review", str(db), "--no-browser", "--port", str(port)])
    assert r.exit_code == 2 and r.output.startswith(f"error: cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("argv", [["tag", "--help"], ["detect", "--help"], ["review", "--help"]])
def test_the_runtime_never_imports_the_review_server(argv):
    code = (
        "import sys\n"
        "from lit_edge.cli.app import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('bottle', 'waitress', 'lit_edge.review', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def test_without_a_bundle_the_search_offers_the_predicted_names(tmp_path):
    db = field_db(tmp_path, n=3)
    with ReviewServer(db, tmp_path / "home") as srv:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # gathered in the background after start-up
            found = srv.get("api/names?q=rose")["names"]
            if found:
                break
            time.sleep(0.2)
        assert {(n["label"], n["common"]) for n in found} == {
            ("Rubra rosea", "red rose-bird"),
            ("Rubra purpurea", "purple rose-bird"),
        }


def test_a_database_from_a_real_tag_run(tmp_path):
    """``lit-edge tag`` writes it (the real pipeline), ``lit-edge review`` shows it and writes to it."""
    card = tmp_path / "card"
    colours = list(COLOURS.items())
    (card / "cam").mkdir(parents=True)
    for i, (_, rgb) in enumerate(colours):
        write_jpeg(card / "cam" / f"IMG_{i}.JPG", solid(rgb, (120, 160)))
    (card / "cam" / "broken.JPG").write_bytes(b"\xff\xd8 not a photo")
    bundle = make_bundle(tmp_path / "bundle")
    db = tmp_path / "card.db"
    r = CliRunner().invoke(
        app, ["tag", str(card), "--db", str(db), "--bundle", str(bundle), "--backend", "onnxruntime-cpu"]
    )
    assert r.exit_code == 0, r.output
    with ReviewServer(db, tmp_path / "home") as srv:  # the run's bundle names the species
        items = srv.get("api/page?status=all")["items"]
        assert sorted(i["top"]["name"] for i in items) == sorted(name for name, _ in colours)
        assert all(len(i["preds"]) >= 2 for i in items)  # the failed photo is not offered
        for i in items:
            assert _req(srv, f"thumb/{i['id']}")[:2] == (200, "image/jpeg")
        status, _, text = _req(srv, "api/accept", {"media_ids": [i["id"] for i in items]})
        assert status == 200 and len(json.loads(text)["written"]) == len(colours)
        assert srv.get("api/info")["verified"] == len(colours)
        assert {n["label"] for n in srv.get("api/names?q=a")["names"]} >= {name for name, _ in colours}
