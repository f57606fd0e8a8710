"""The TensorRT runner: an engine (explicit-quantization INT8 or FP32/FP16) with buffers allocated once.

The engine is built from the bundle's ONNX on this GPU the first time and cached beside the bundle
(:func:`lit_edge.device.engines.engine_for_bundle`). One execution context, one stream and shared
buffers: not safe from two threads at once (the spec says so; the engine takes calls in turn).
"""

from __future__ import annotations

import numpy as np

from lit_edge.bundle import Bundle
from lit_edge.errors import UserError, require


class TensorRTRunner:
    def __init__(self, bundle: Bundle, flavour: str):
        trt = require("tensorrt", "tensorrt")
        cuda = require("pycuda.driver", "tensorrt")
        require("pycuda.autoinit", "tensorrt")
        from lit_edge.device.engines import engine_for_bundle

        engine_path = engine_for_bundle(bundle, flavour)
        self._cuda = cuda
        logger = trt.Logger(trt.Logger.WARNING)
        with open(engine_path, "rb") as f:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise UserError(f"{engine_path}: TensorRT could not load this engine; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._buffers: dict[int, tuple] = {}

    def embed(self, batch: np.ndarray) -> np.ndarray:
        cuda, n = self._cuda, batch.shape[0]
        if n not in self._buffers:
            self.context.set_input_shape("image", batch.shape)
            out_shape = tuple(self.context.get_tensor_shape("embedding"))
            host_out = cuda.pagelocked_empty(out_shape, dtype=np.float32)
            d_in, d_out = cuda.mem_alloc(batch.nbytes), cuda.mem_alloc(host_out.nbytes)
            self._buffers[n] = (host_out, d_in, d_out)
        host_out, d_in, d_out = self._buffers[n]
        self.context.set_input_shape("image", batch.shape)
        self.context.set_tensor_address("image", int(d_in))
        self.context.set_tensor_address("embedding", int(d_out))
        cuda.memcpy_htod_async(d_in, np.ascontiguousarray(batch), self.stream)
        self.context.execute_async_v3(self.stream.handle)
        cuda.memcpy_dtoh_async(host_out, d_out, self.stream)
        self.stream.synchronize()
        return np.array(host_out)
