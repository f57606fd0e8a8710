"""ONNX Runtime runners: one session on one execution provider, checked, never silently another.

``InferenceSession.run`` is thread-safe and releases the GIL, so one session serves several
inference threads at once (the specs say ``concurrent``): with one intra-op thread each call runs
on its caller's thread, and the weights are held once.

ONNX Runtime silently drops an execution provider it cannot load, so after creating a session we
check the providers it really has: a GPU backend that would run on the CPU is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_edge.errors import UserError

CPU = "CPUExecutionProvider"


class OrtRunner:
    """An ONNX Runtime session of ``model`` (an image tower: ``image`` in, ``embedding`` out) on
    ``provider``; ``providers`` is the full list with options (a GPU's fall-backs), else just it."""

    def __init__(self, model: Path, provider: str = CPU, threads: int = 0, providers: list | None = None):
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            raise UserError(
                f"ONNX Runtime's {provider} is not in this install "
                f"(it has: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu "
                "or choose --backend onnxruntime-cpu"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # no busy-waiting between ops: the decode threads need those cycles, and a battery does too
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if provider == CPU:
            # The memory pattern pre-plans one block per batch shape on top of the arena; without it
            # the arena alone reuses buffers: measured 9-18 MB less peak RSS per batch in flight
            # (EfficientNet-Lite0 INT8, batch 1-2), at the same speed.
            opts.enable_mem_pattern = False
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=providers or [provider])
        if provider not in self.session.get_providers():
            raise UserError(
                f"ONNX Runtime could not load {provider} on this machine (driver or library missing); "
                "fix the GPU install or choose --backend onnxruntime-cpu"
            )
        if "image" not in {i.name for i in self.session.get_inputs()}:
            raise UserError(f"{model}: image tower has no input named 'image'; re-export the bundle")

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(["embedding"], {"image": batch})[0]
