"""Export: a checkpoint becomes a bundle the device runtime loads.

``onnx_export``  image tower -> ONNX (uint8 NHWC in, normalisation inside, L2-normalised out), checked
``quantize``     explicit INT8 (QDQ) towers: ``cpu`` (u8/s8) and ``tensorrt`` (symmetric s8/s8)
``calib``        real calibration images: a folder, or crops of the packaged sample photos
``species``      the frozen species matrix (text tower + template ensemble)
``head``         folds the matrix into a classifier graph (output ``scores``), torch- and onnx-free
``writer``       writes/updates bundles; ``starter`` builds the default bundle

TensorRT engines are built on the device, by the device (:mod:`lit_edge.device.engines`);
``lit-edge export engine`` calls it ahead of time. Only ``onnx_export``, ``species`` and the
bundle-building parts of ``writer`` import torch, lazily.
"""
