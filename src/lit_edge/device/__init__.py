"""The device runtime: sources, decoding, backends, the pipeline; results go to ``lit_edge.db``.

Nothing under this package may import torch (a test checks it): a Jetson or a laptop runs it with
numpy, OpenCV, ONNX Runtime or TensorRT, Python's sqlite3 and typer only.

``sources``     addresses (csi://, v4l2://, rtsp://, files, folders, globs) and the live reader thread
``exif``        a small JPEG header/EXIF parser (size, orientation, capture time, GPS)
``decode``      OpenCV decoding: orientation, reduced-size JPEG decode, 16-bit/alpha/CMYK, failures
``preprocess``  resize/crop to the image tower's input as the bundle says
``backends``    TensorRT / ONNX Runtime (TensorRT, CUDA, CPU) behind ``embed(uint8 NHWC)``
``classify``    softmax top-k, roll-up to genus/family/... or ``uncertain``, ``--species`` subsets
``pipeline``    ``Engine``: bundle + backend + classifier
``tagger``      ``lit-edge tag``: a folder exactly once, resumable
``live``        ``lit-edge detect``: a camera, stream or video until stopped
"""
