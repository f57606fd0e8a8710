"""LiT training: locked image tower, tuned text tower, contrastive loss, torchrun-distributed.

Modules, each with one purpose:

- :mod:`~lit_edge.train.config`      typed ``TrainConfig`` (+ ``--set`` overrides), loaded from ``train/*.py``
- :mod:`~lit_edge.train.loss`        softmax (CLIP) / sigmoid (SigLIP) losses, gather-with-grad, multi-positive
- :mod:`~lit_edge.train.cache`       the feature cache format (``write_cache`` for arrays, sharded builds)
- :mod:`~lit_edge.train.featurize`   building the cache from images with the locked tower, over ranks
- :mod:`~lit_edge.train.batches`     the (seed, step)-pure sampler, cached and online batch sources
- :mod:`~lit_edge.train.trainer`     the loop: ``train(cfg, resume=False)``
- :mod:`~lit_edge.train.checkpointing` atomic checkpoints and resume
- :mod:`~lit_edge.train.evaluate`    evaluators by name (``zeroshot``: top-1/5 at every rank)
- :mod:`~lit_edge.train.distributed` torchrun process-group set-up and gradient averaging

Importing this package imports nothing heavy; the submodules import torch.
"""
