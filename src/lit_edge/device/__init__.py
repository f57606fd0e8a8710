"""The device runtime: sources, decoding, backends, the pipeline and the SQLite store.

Nothing under this package may import torch (a test checks it): a Jetson or a laptop runs it with
numpy, OpenCV, ONNX Runtime or TensorRT, sqlite-utils and typer only.
"""
