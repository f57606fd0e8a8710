"""The zero-shot classifier: template-averaged, re-normalised text embeddings, one row per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_edge.model import build_classifier, create_model
from lit_edge.taxonomy import Taxon, TextType, zero_shot_texts

TAXA = [
    Taxon.from_name("Danaus plexippus", common_name="Monarch butterfly", family="Nymphalidae"),
    Taxon.from_name("Felis catus", common_name="Domestic cat", family="Felidae"),
    Taxon.from_name("Quercus robur", common_name="English oak", family="Fagaceae"),
]
TEMPLATES = ("a photo of {}.", "a camera trap photo of {}.", "a close-up photo of {}.")


@pytest.fixture(scope="module")
def minilm():
    """The real text tower (a fresh model's text embeddings are all-MiniLM-L6-v2's)."""
    return create_model("lit-effnetlite0-minilm")


@torch.no_grad()
def test_rows_are_template_averages_in_class_order():
    torch.manual_seed(0)
    model = create_model("lit-tiny-test").train()
    matrix = build_classifier(model, TAXA, templates=TEMPLATES, text_type=TextType.SCIENTIFIC)
    assert matrix.shape == (3, model.config.embed_dim) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert model.training  # the caller's mode is restored
    model.eval()
    for i, taxon in enumerate(TAXA):
        emb = model.encode_text(model.tokenize(zero_shot_texts(taxon, TEMPLATES)))
        expected = F.normalize(emb.mean(dim=0), dim=-1).numpy()
        np.testing.assert_allclose(matrix[i], expected, atol=1e-5)
    # Batching does not change the result; plain names work like taxa.
    np.testing.assert_allclose(build_classifier(model, TAXA, TEMPLATES, batch_size=2), matrix, atol=1e-5)
    by_name = build_classifier(model, [t.scientific_name for t in TAXA], TEMPLATES)
    np.testing.assert_allclose(by_name, matrix, atol=1e-5)


@pytest.mark.slow
@torch.no_grad()
def test_common_name_classifier_points_at_the_right_class(minilm):
    """Through the real MiniLM tokenizer and weights: a description lands on its own species' row."""
    matrix = build_classifier(minilm, TAXA, templates=TEMPLATES, text_type=TextType.COMMON)
    queries = [
        "an orange butterfly on a flower",
        "a kitten sleeping on a sofa",
        "a large old tree with acorns",
    ]
    q = minilm.encode_text(minilm.tokenize(queries)).numpy()
    scores = q @ matrix.T
    assert scores.argmax(axis=1).tolist() == [0, 1, 2]
