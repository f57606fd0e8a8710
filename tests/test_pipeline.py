"""The one ordered inference pipeline (tag and detect run it): input order kept through batches and
workers, items that yield many frames with a closing step, failures in place, embeddings with
decisions, and the two plans (throughput waits for full batches; latency never does).

Real parts: the colour bundle's ONNX graph in a real ONNX Runtime session, real decoding threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from bundle_factory import COLOURS, make_bundle, solid
from lit_edge.device import backends
from lit_edge.device.config import BackendConfig, DetectConfig, EngineConfig, TagConfig
from lit_edge.device.pipeline import Engine, Loaded, Pipeline, Sample
from lit_edge.device.plan import plan_detect, plan_tag

NAMES = list(COLOURS)


@dataclass
class Rec:
    """Stands for the store's MediaRecord: what the pipeline reads and sets."""

    path: str
    frame_index: int = -1
    status: str = "done"
    decision: object = None
    embedding: np.ndarray | None = None
    frames: list = field(default_factory=list)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    bundle = make_bundle(tmp_path_factory.mktemp("bundle"))
    return Engine(EngineConfig(bundle=bundle, backend=BackendConfig("onnxruntime-cpu", threads=1)))


def _photo(engine: Engine, i: int, rng) -> Loaded:
    img = solid(COLOURS[NAMES[i % 4]]) ^ rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
    return Loaded([Sample(Rec(f"photo{i}"), engine.prepare(img))])


def _clip(engine: Engine, i: int, n: int, rng) -> Loaded:
    """A clip: n sampled frames of one colour, then its own row made from them by ``close``."""
    frames = [
        Sample(
            Rec(f"clip{i}", frame_index=j),
            engine.prepare(solid(COLOURS[NAMES[i % 4]]) ^ rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)),
        )
        for j in range(n)
    ]

    def close(done: list) -> list:
        clip = Rec(f"clip{i}", frames=[r.frame_index for r in done])
        names = {r.decision.name for r in done}
        clip.decision = done[0].decision if len(names) == 1 else None
        return [clip]

    return Loaded(frames, close)


def _items(engine: Engine, seed: int = 0) -> list:
    """Photos, two clips (one of 0 frames: it could not be read), and a failure, interleaved."""
    rng = np.random.default_rng(seed)
    items: list = []
    for i in range(24):
        items.append(_photo(engine, i, rng))
        if i == 5:
            items.append(_clip(engine, 1, 7, rng))
        if i == 9:
            items.append(Loaded([Sample(Rec("broken.jpg", status="failed"))]))
        if i == 14:
            items.append(Loaded([], lambda done: [Rec("empty-clip", status="failed")]))
    return items


def _run(engine: Engine, plan, loaders) -> list[Rec]:
    out: list[Rec] = []
    with Pipeline(engine, plan, lambda s: out.append(s.record)) as pipe:
        for load in loaders:
            pipe.put(load)
    return out


def _expected_order() -> list[tuple[str, int]]:
    order = []
    for i in range(24):
        order.append((f"photo{i}", -1))
        if i == 5:
            order += [("clip1", j) for j in range(7)] + [("clip1", -1)]
        if i == 9:
            order.append(("broken.jpg", -1))
        if i == 14:
            order.append(("empty-clip", -1))
    return order


@pytest.mark.parametrize("workers", [1, 3])
def test_records_come_out_in_input_order_with_decisions_and_embeddings(engine, workers):
    cpu = backends.get("onnxruntime-cpu")
    plan = plan_tag(TagConfig(source="x", db=Path("x.db"), workers=workers, batch_size=4, decoders=2), cpu)
    items = _items(engine)
    expect = engine.embed(np.stack([items[0].samples[0].image]))[0]
    out = _run(engine, plan, [lambda item=item: item for item in items])  # loaded on the decode pool
    assert [(r.path, r.frame_index) for r in out] == _expected_order()
    photos = [r for r in out if r.path.startswith("photo")]
    assert [r.decision.name for r in photos] == [NAMES[i % 4] for i in range(24)]
    clip = [r for r in out if r.path == "clip1"]
    assert clip[-1].frames == list(range(7)) and clip[-1].decision.name == NAMES[1]  # closed after its frames
    assert all(r.decision is None and r.embedding is None for r in out if r.status == "failed")
    emb = photos[0].embedding
    assert emb.dtype == np.float16 and emb.shape == (16,) and abs(np.linalg.norm(emb) - 1) < 1e-2
    np.testing.assert_allclose(emb.astype(np.float32), expect, atol=2e-3)  # the tower's own output
    assert items[0].samples[0].image is None  # the pipeline let go of the pixels once classified


def test_one_or_three_workers_give_identical_records(engine):
    cpu = backends.get("onnxruntime-cpu")

    def table(workers: int):
        plan = plan_tag(TagConfig(source="x", db=Path("x.db"), workers=workers, batch_size=3), cpu)
        out = _run(engine, plan, _items(engine, seed=7))
        return [
            (
                r.path,
                r.frame_index,
                r.decision and r.decision.top,
                r.embedding is not None and r.embedding.tobytes(),
            )
            for r in out
        ]

    one, three = table(1), table(3)
    assert one == three
    assert len({row[2] for row in one if row[2]}) > 20  # every photo scored apart: a comparison that can fail


def test_embeddings_can_be_left_out(engine):
    plan = plan_tag(TagConfig(source="x", db=Path("x.db")), backends.get("onnxruntime-cpu"))
    out: list[Rec] = []
    with Pipeline(engine, plan, lambda s: out.append(s.record), embeddings=False) as pipe:
        pipe.put(*_items(engine)[:3])
    assert len(out) == 3 and all(r.decision is not None and r.embedding is None for r in out)


def test_latency_plan_never_waits_to_fill_a_batch_and_throughput_plan_does(engine):
    cpu = backends.get("onnxruntime-cpu")
    live = plan_detect(DetectConfig(source="x", batch_size=8), cpu)
    bulk = plan_tag(TagConfig(source="x", db=Path("x.db"), batch_size=8, workers=1), cpu)
    rng = np.random.default_rng(1)
    for plan, sunk_at_once in ((live, True), (bulk, False)):
        out: list[Rec] = []
        with Pipeline(engine, plan, lambda s, out=out: out.append(s.record)) as pipe:
            pipe.put(_photo(engine, 0, rng))
            assert (len(out) == 1) is sunk_at_once  # detect: logged before put returns (1 worker)
        assert len(out) == 1  # and a partial batch is always run at the end


def test_a_failing_model_call_reaches_the_caller(engine):
    plan = plan_tag(
        TagConfig(source="x", db=Path("x.db"), batch_size=2, workers=2), backends.get("onnxruntime-cpu")
    )
    calls = threading.Event()

    class Broken:
        def __init__(self, inner):
            self.inner = inner

        def infer(self, batch):
            calls.set()
            raise RuntimeError("the model fell over")

    out: list[Rec] = []
    broken = Pipeline(Broken(engine), plan, lambda s: out.append(s.record))
    with pytest.raises(RuntimeError, match="the model fell over"), broken as pipe:
        pipe.put(*_items(engine)[:4])
    assert calls.is_set() and out == []
