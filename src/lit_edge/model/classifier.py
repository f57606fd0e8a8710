"""Zero-shot classifier: one L2-normalised text embedding per class (open_clip's habit).

Each class is written out with every template (:func:`lit_edge.taxonomy.zero_shot_texts`), encoded,
normalised, averaged and normalised again. The rows are the species matrix of a bundle
(``text_embeddings.npy``, C x D): scores = logit_scale * image_embedding @ matrix.T.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lit_edge.taxonomy import TEMPLATES, Taxon, TextType, zero_shot_texts


@torch.no_grad()
def build_classifier(
    model,
    taxa: Sequence[Taxon | str],
    templates: Sequence[str] = TEMPLATES,
    text_type: TextType = TextType.SCIENTIFIC,
    batch_size: int = 256,
) -> np.ndarray:
    """``[C, D]`` float32, row ``i`` the class embedding of ``taxa[i]`` (a Taxon or a plain name)."""
    texts: list[str] = []
    for taxon in taxa:
        if isinstance(taxon, str):
            texts.extend(t.format(taxon) for t in templates)
        else:
            texts.extend(zero_shot_texts(taxon, templates=templates, text_type=text_type))
    device = next(model.text_tower.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for i in range(0, len(texts), batch_size):
            tokens = {k: v.to(device) for k, v in model.tokenize(texts[i : i + batch_size]).items()}
            chunks.append(model.encode_text(tokens, normalize=True).float())
    finally:
        model.train(was_training)
    emb = torch.cat(chunks).reshape(len(taxa), len(templates), -1).mean(dim=1)
    emb = torch.nn.functional.normalize(emb, dim=-1)
    return emb.cpu().numpy().astype(np.float32)
