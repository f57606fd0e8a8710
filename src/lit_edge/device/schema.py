"""The detection database's schema: the contract between the runtime and every exporter.

SQLite, WAL mode, written by one writer thread in batched transactions (see ``store.py``).

``runs``        one row per ``lit-edge tag`` / ``lit-edge detect`` invocation
``media``       one row per photo or per classified frame; ``status`` is ``done`` or ``failed``
``predictions`` the top-k classes of a media row (``rank`` 1 = best), plus the roll-up decision

A photo is identified by its resolved absolute ``path`` (unique with ``frame_index`` = -1), which is
what makes ``tag`` resumable: a path already ``done`` is skipped, a ``failed`` one is retried only
with ``--retry-failed``. Live frames have ``source`` set to the address and ``frame_index`` >= 0,
unique per run.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

RUNS = {
    "id": int,  # primary key
    "command": str,  # tag | detect
    "source": str,  # folder, glob, file or stream address as given
    "bundle": str,  # bundle folder
    "bundle_sha256": str,  # sha256 of the bundle's manifest.json
    "model_name": str,
    "model_version": str,
    "backend": str,  # tensorrt | onnxruntime-trt | onnxruntime-cuda | onnxruntime-cpu
    "flavour": str,  # fp32 | int8_cpu | int8_tensorrt
    "settings": str,  # JSON of the typed run config
    "host": str,
    "lit_edge_version": str,
    "started_at": str,  # ISO 8601 UTC
    "finished_at": str,
    "status": str,  # running | finished | interrupted
}

MEDIA = {
    "id": int,
    "run_id": int,  # the run that last processed it
    "path": str,  # resolved absolute path for files; the address for live sources
    "frame_index": int,  # -1 for a photo; frame number for video and live sources
    "source": str,
    "captured_at": str,  # ISO 8601 (local time as the camera wrote it when from EXIF)
    "time_source": str,  # exif | clock | mtime | video
    "latitude": float,
    "longitude": float,
    "altitude": float,
    "width": int,
    "height": int,
    "file_size": int,
    "status": str,  # done | failed
    "error": str,  # reason when failed (one line)
    "processed_at": str,
    "saved_frame": str,  # path of the saved JPEG of a confident detection, if any
    "top_label_id": int,  # the decided class (after roll-up), null when uncertain/failed
    "top_name": str,  # its scientific name or the rolled-up taxon's name; 'uncertain'; 'blank'
    "top_rank": str,  # species | genus | family | ... | uncertain | blank (no animal)
    "top_score": float,
}

PREDICTIONS = {
    "id": int,
    "media_id": int,
    "rank": int,  # 1..k by score
    "label_id": int,  # row of labels.csv
    "scientific_name": str,
    "common_name": str,
    "score": float,  # softmax probability over the (possibly restricted) species list
}

INDEXES = {
    "media": [("path", "frame_index")],  # unique
    "predictions": [("media_id",)],
}
