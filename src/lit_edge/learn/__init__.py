"""``lit-edge learn``: the model learns a site from the photos people verified.

The image tower is locked, so a verified photo's stored embedding is a training example as it is:
``learn`` reads the verified embeddings and labels of one or more databases
(:mod:`lit_edge.learn.verified`), fits new species rows, background rows and a logit scale by
cross-validation (:mod:`lit_edge.learn.core`), and writes a new bundle with the same image towers
(:mod:`lit_edge.learn.write`). Numpy only, so it runs on the device that tagged the photos.
"""

from lit_edge.learn.core import LearnConfig, Learned, Verified, learn

__all__ = ["LearnConfig", "Learned", "Verified", "learn"]
