"""The device runtime: sources, decoding, backends, the pipeline; results go to ``lit_edge.db``.

Nothing under this package may import torch (a test checks it), nor :mod:`lit_edge.export`: a
Jetson or a laptop runs it with numpy, OpenCV, ONNX Runtime or TensorRT, Python's sqlite3 and
typer only.

``config``      the typed configs of ``tag`` and ``detect``: the one source of their defaults
``sources``     addresses (csi://, v4l2://, rtsp://, files, folders, globs) and the live reader thread
``exif``        a small JPEG header/EXIF parser (size, orientation, capture time, GPS)
``decode``      OpenCV decoding: orientation, reduced-size JPEG decode, 16-bit/alpha/CMYK, failures
``preprocess``  resize/crop to the image tower's input as the bundle says
``backends``    the backend registry (TensorRT, ONNX Runtime on TensorRT/CUDA/CPU) behind ``embed``
``engines``     GPU engines built on the device: TensorRT's builder and cache, ORT's GPU providers
``classify``    softmax top-k, roll-up to genus/family/... or an outcome, ``--species`` subsets
``plan``        workers, threads and batch size for the backend that opened (throughput or latency)
``pipeline``    ``Engine`` (bundle + backend + classifier) and the one ordered inference pipeline
``signals``     SIGINT/SIGTERM: finish the batch, flush, exit
``tagger``      ``lit-edge tag``: a folder exactly once, resumable
``live``        ``lit-edge detect``: a camera, stream or video until stopped
"""
