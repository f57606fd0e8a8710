"""A self-contained HTML report of a detection database: one file, viewable with no network.

Everything is inline: CSS, the charts (SVG written here, no chart library), and the thumbnails
(small JPEGs made with OpenCV, embedded as base64 ``data:`` URIs). A Content-Security-Policy that
allows nothing but inline content and ``data:`` images makes "self-contained" checkable: any
external fetch would be blocked and reported as a console error. A tiny inline script records
page errors into ``#js-errors`` so that a headless browser's dumped DOM shows whether it rendered
cleanly.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from lit_edge import __version__
from lit_edge.db.reader import Detections, MediaRow
from lit_edge.db.summary import Summary, summarise
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.progress import track
from lit_edge.outcomes import classify_media

log = logging.getLogger(__name__)

THUMB_PX = 160
THUMBS_PER_SPECIES = 12

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#222;max-width:1100px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:.5rem}.thumb{width:THUMBpx;font-size:.75rem}
.thumb img{width:100%;height:auto;display:block;border-radius:3px;background:#eee}
.missing{width:100%;height:90px;background:#eee;display:flex;align-items:center;justify-content:center;color:#888}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;font-size:.8rem}
.meta{color:#666;font-size:.85rem}#js-errors{color:#b00}#js-errors:empty{display:none}figure{margin:0}
""".replace("THUMB", str(THUMB_PX))

SCRIPT = """
(function(){
  var pending=[];
  function record(msg){
    var box=document.getElementById('js-errors');
    if(box){box.textContent+=msg+'\\n';}else{pending.push(msg);}
  }
  window.addEventListener('error',function(e){
    record('error: '+(e.message||(e.target&&(e.target.src||e.target.href))||e.type));},true);
  document.addEventListener('securitypolicyviolation',function(e){record('blocked: '+e.blockedURI);});
  var ce=console.error;
  console.error=function(){record('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};
  document.addEventListener('DOMContentLoaded',function(){
    pending.forEach(record);pending=[];
    document.body.setAttribute('data-rendered','ok');
    document.body.setAttribute('data-images',String(document.querySelectorAll('img').length));
  });
})();
"""


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def thumbnail(path: str, px: int = THUMB_PX) -> str | None:
    """A base64 JPEG thumbnail (longest side ``px``), or None when the photo cannot be read."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_2)
    if img is None:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = px / max(h, w)
    if scale < 1:
        img = cv2.resize(
            img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else None


def bar_chart(rows: list[tuple[str, int]], width: int = 640) -> str:
    """Horizontal bars, one per (label, count), as inline SVG."""
    if not rows:
        return '<p class="meta">Nothing to chart.</p>'
    bar_h, gap, label_w = 18, 6, 220
    top = max(c for _, c in rows) or 1
    height = len(rows) * (bar_h + gap) + gap
    parts = [
        f'<svg id="species-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Detections per species">'
    ]
    for i, (label, count) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(1, round((width - label_w - 60) * count / top))
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end" font-size="12">{_e(label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="#3a7d44">'
            f"<title>{_e(label)}: {count}</title></rect>"
            f'<text x="{label_w + w + 4}" y="{y + bar_h - 5}" font-size="12">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def timeline_chart(per_day: dict[str, dict[str, int]], width: int = 760, height: int = 200) -> str:
    """Photos and named detections per day, as inline SVG columns."""
    days = [d for d in per_day if d != "unknown"]
    if not days:
        return '<p class="meta">No timestamps to chart.</p>'
    left, bottom, top_pad = 40, 40, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    peak = max(per_day[d]["media"] for d in days) or 1
    slot = plot_w / len(days)
    col = max(2.0, slot * 0.4)
    parts = [
        f'<svg id="timeline-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Photos and detections per day">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    step = max(1, len(days) // 8)
    for i, d in enumerate(days):
        x = left + i * slot + slot * 0.1
        for j, (key, colour) in enumerate((("media", "#9bb7d4"), ("named", "#3a7d44"))):
            v = per_day[d][key]
            h = plot_h * v / peak
            parts.append(
                f'<rect class="day-{key}" x="{x + j * col:.1f}" y="{top_pad + plot_h - h:.1f}" width="{col:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(d)}: {v} {key}</title></rect>'
            )
        if i % step == 0:
            parts.append(
                f'<text x="{x + col:.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="11">{_e(d)}</text>'
            )
    parts.append(
        f'<rect x="{left}" y="{height - 14}" width="10" height="10" fill="#9bb7d4"/>'
        f'<text x="{left + 14}" y="{height - 5}" font-size="11">photos</text>'
        f'<rect x="{left + 80}" y="{height - 14}" width="10" height="10" fill="#3a7d44"/>'
        f'<text x="{left + 94}" y="{height - 5}" font-size="11">named detections</text></svg>'
    )
    return "".join(parts)


def _species_table(s: Summary) -> str:
    rows = "".join(
        f"<tr><td><i>{_e(sc.name)}</i></td><td>{_e(sc.common_name)}</td><td>{_e(sc.rank)}</td>"
        f'<td class="n">{sc.count}</td><td class="n">{sc.mean_score:.2f}</td><td class="n">{sc.max_score:.2f}</td></tr>'
        for sc in s.species
    )
    return (
        '<table id="species-table"><thead><tr><th>Scientific name</th><th>Common name</th><th>Rank</th>'
        "<th>Photos</th><th>Mean score</th><th>Best score</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _thumbs(det: Detections, cfg: FieldDataConfig, s: Summary) -> str:
    by_name: dict[str, list[tuple[float, MediaRow]]] = {}
    for m in det.media:
        c = classify_media(m, cfg.rule)
        if c.scientific_name:
            by_name.setdefault(c.scientific_name, []).append((c.probability or 0.0, m))
    out = []
    for sc in track(s.species, len(s.species), "thumbnails"):
        items = sorted(by_name.get(sc.name, []), key=lambda t: (-t[0], t[1].id))[:THUMBS_PER_SPECIES]
        cells = []
        for score, m in items:
            source = m.path if m.is_photo else m.saved_frame
            b64 = thumbnail(source) if source else None
            img = (
                f'<img src="data:image/jpeg;base64,{b64}" alt="{_e(m.name)}">'
                if b64
                else '<div class="missing">not found</div>'
            )
            cells.append(
                f'<figure class="thumb">{img}<figcaption>{_e(m.name)}<br>{score:.2f}</figcaption></figure>'
            )
        out.append(
            f'<section class="species"><h3><i>{_e(sc.name)}</i> {_e(sc.common_name)} ({sc.count})</h3>'
            f'<div class="grid">{"".join(cells)}</div></section>'
        )
    return "".join(out) or '<p class="meta">No named detections.</p>'


def _failures(det: Detections) -> str:
    failed = [m for m in det.media if not m.ok]
    if not failed:
        return '<p class="meta" id="no-failures">No failures.</p>'
    rows = "".join(f"<tr><td>{_e(m.path)}</td><td>{_e(m.error)}</td></tr>" for m in failed)
    return f'<table id="failures"><thead><tr><th>Path</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>'


def _runs(det: Detections) -> str:
    out = []
    for r in det.runs:
        facts = [
            ("Command", r.command),
            ("Source", r.source),
            ("Bundle", r.bundle),
            ("Bundle sha256", r.bundle_sha256),
            ("Model", r.classifier),
            ("Backend", f"{r.backend} ({r.flavour})"),
            ("Host", r.host),
            ("lit-edge", r.lit_edge_version),
            ("Started", r.started_at),
            ("Finished", r.finished_at),
            ("Status", r.status),
        ]
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
        settings = json.dumps(r.settings, indent=2, sort_keys=True)
        out.append(f'<h3>Run {r.id}</h3><table class="run">{rows}</table><pre>{_e(settings)}</pre>')
    return "".join(out) or '<p class="meta">No runs recorded.</p>'


def render_report(det: Detections, cfg: FieldDataConfig) -> str:
    s = summarise(det.db, rule=cfg.rule)
    types = ", ".join(f"{k}: {v}" for k, v in sorted(s.by_type.items()))
    generated = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lit-edge report: {_e(det.db.name)}</title><style>{STYLE}</style>
<script>{SCRIPT}</script></head>
<body>
<h1>lit-edge report: {_e(det.db.name)}</h1>
<p class="meta">{s.total} media, {s.done} classified ({s.blank} blank), {s.failed} failed ({_e(types)}). Generated {generated} by lit-edge {__version__}.</p>
<pre id="js-errors"></pre>
<h2>Species</h2><p class="meta" id="blank-count">Blank (no animal): {s.blank} photos.</p>{_species_table(s)}
{bar_chart([(sc.name, sc.count) for sc in s.species[:25]])}
<h2>Detections over time</h2>{timeline_chart(s.per_day)}
<h2>Photos per species</h2>{_thumbs(det, cfg, s)}
<h2>Failures ({s.failed})</h2>{_failures(det)}
<h2>Runs and bundle</h2>{_runs(det)}
</body></html>
"""


def write_report(det: Detections, out: Path, cfg: FieldDataConfig) -> Path:
    """Write the report to ``out`` (a file; a folder gets ``report.html`` inside)."""
    out = Path(out)
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(det, cfg), encoding="utf-8")
    log.info("wrote report %s", out)
    return out
