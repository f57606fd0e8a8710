"""The losses against plain-loop references, and across a real 2-process gloo group."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from lit_edge.errors import UserError
from lit_edge.train.config import LossConfig
from lit_edge.train.loss import LossInputs, create_loss

torch.set_num_threads(1)


def _reference(img, txt, scale, bias, labels, kind, multi_positive):
    """The loss written as loops over the global batch, one pair at a time."""
    img, txt = img.double().tolist(), txt.double().tolist()
    n = len(img)

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    def positive(i, j):
        return labels[i] == labels[j] if multi_positive else i == j

    if kind == "softmax":
        total = 0.0
        for a, b in ((img, txt), (txt, img)):
            for i in range(n):
                logits = [scale * dot(a[i], b[j]) for j in range(n)]
                m = max(logits)
                lse = m + math.log(sum(math.exp(v - m) for v in logits))
                pos = [j for j in range(n) if positive(i, j)]
                total += -sum(logits[j] - lse for j in pos) / len(pos) / n
        return total / 2
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = scale * dot(img[i], txt[j]) + bias
            y = 1.0 if positive(i, j) else -1.0
            total += math.log1p(math.exp(-y * z))
    return total / n


def _loss(img, txt, scale, bias=None, labels=None, kind="softmax", multi_positive=False):
    """The configured loss, built by the one factory the trainer uses."""
    inputs = LossInputs(img, txt, txt, torch.as_tensor(scale), bias, labels)
    return create_loss(LossConfig(kind, multi_positive))(inputs)


def _distill(image, text_head):
    n = len(image)
    inputs = LossInputs(image, image, text_head, torch.tensor(1.0), labels=torch.arange(n))
    return create_loss(LossConfig("distill"))(inputs)


def _features(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    return img, txt


LABELS = [0, 1, 0, 2, 1, 3, 0, 4]
CASES = [(k, mp_) for k in ("softmax", "sigmoid") for mp_ in (False, True)]


@pytest.mark.parametrize(("kind", "multi_positive"), CASES)
def test_single_process_matches_loop_reference(kind, multi_positive):
    img, txt = _features(len(LABELS), 6, seed=0)
    scale, bias = 7.0, -2.0
    labels = torch.tensor(LABELS)
    got = _loss(img, txt, scale, torch.tensor(bias), labels, kind, multi_positive)
    want = _reference(img, txt, scale, bias, LABELS, kind, multi_positive)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_multi_positive_changes_the_loss_only_when_classes_repeat():
    img, txt = _features(4, 6, seed=1)
    s = torch.tensor(5.0)
    plain = _loss(img, txt, s, labels=torch.tensor([0, 1, 2, 3]))
    multi_distinct = _loss(img, txt, s, labels=torch.tensor([0, 1, 2, 3]), multi_positive=True)
    multi_repeat = _loss(img, txt, s, labels=torch.tensor([0, 0, 2, 3]), multi_positive=True)
    assert multi_distinct.item() == pytest.approx(plain.item(), rel=1e-6)
    assert multi_repeat.item() != pytest.approx(plain.item(), rel=1e-3)


def _model_and_batch(d_in=5, d=4, n=8, seed=0):
    """A tiny 'text tower' (a linear layer) and a global batch; same on every rank."""
    torch.manual_seed(seed)
    tower = torch.nn.Linear(d_in, d)
    x = torch.randn(n, d_in)
    img = torch.nn.functional.normalize(torch.randn(n, d), dim=1)
    return tower, x, img


def _step(tower, x, img, labels, kind, multi_positive):
    txt = torch.nn.functional.normalize(tower(x), dim=1)
    loss = _loss(img, txt, 4.0, torch.tensor(-1.0), labels, kind, multi_positive)
    loss.backward()
    return loss.detach()


def _worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        for kind, multi_positive in CASES:
            tower, x, img = _model_and_batch()
            labels = torch.tensor(LABELS)
            n = x.shape[0] // world
            sl = slice(rank * n, (rank + 1) * n)
            loss = _step(tower, x[sl], img[sl], labels[sl], kind, multi_positive)
            dist.all_reduce(loss)
            loss /= world
            for p in tower.parameters():
                dist.all_reduce(p.grad)
                p.grad /= world
            results[f"{kind}-{multi_positive}-loss"] = loss.numpy()
            results[f"{kind}-{multi_positive}-wgrad"] = tower.weight.grad.numpy()
            results[f"{kind}-{multi_positive}-bgrad"] = tower.bias.grad.numpy()
        np.savez(f"{out_dir}/rank{rank}.npz", **results)
        dist.barrier()  # leave together: a rank tearing down mid-collective aborts its peer
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_single_process_loss_and_gradients(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz", allow_pickle=False) for r in range(2)]
    for kind, multi_positive in CASES:
        tower, x, img = _model_and_batch()
        loss = _step(tower, x, img, torch.tensor(LABELS), kind, multi_positive)
        key = f"{kind}-{multi_positive}"
        for r in ranks:
            np.testing.assert_allclose(r[f"{key}-loss"], loss.numpy(), rtol=1e-5)
            np.testing.assert_allclose(r[f"{key}-wgrad"], tower.weight.grad.numpy(), rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(r[f"{key}-bgrad"], tower.bias.grad.numpy(), rtol=1e-4, atol=1e-7)


# distillation ---------------------------------------------------------------------------------------
def _distill_reference(img, logits):
    """``mean_i -sum_c q_ic log softmax(z_i)_c`` with ``q = img ** 2``, one row and class at a time."""
    total = 0.0
    for row, z in zip(img.double().tolist(), logits.double().tolist(), strict=True):
        q = [v * v for v in row]
        s = sum(q)
        m = max(z)
        lse = m + math.log(sum(math.exp(v - m) for v in z))
        total += -sum(qc / s * (zc - lse) for qc, zc in zip(q, z, strict=True))
    return total / len(img)


def test_distillation_matches_loop_reference():
    g = torch.Generator().manual_seed(3)
    q = torch.softmax(3 * torch.randn(6, 10, generator=g), dim=1)
    q[0] = 0.0
    q[0, [2, 5]] = 0.5  # a target spread over two classes, zeros elsewhere (a genus)
    logits = torch.randn(6, 10, generator=g)
    got = float(_distill(q.sqrt(), logits))
    assert got == pytest.approx(_distill_reference(q.sqrt(), logits), rel=1e-5)
    one_hot = torch.zeros(6, 10)
    labels = torch.tensor([1, 4, 4, 0, 9, 2])
    one_hot[torch.arange(6), labels] = 1.0  # one class per image: plain cross-entropy
    expected = torch.nn.functional.cross_entropy(logits, labels)
    assert float(_distill(one_hot, logits)) == pytest.approx(float(expected), rel=1e-6)


def test_distillation_gradient_vanishes_where_the_text_distribution_equals_the_image_one():
    q = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(1)), dim=1)
    at_target = q.log().clone().requires_grad_(True)
    _distill(q.sqrt(), at_target).backward()
    assert at_target.grad.abs().max() < 1e-6
    off = torch.zeros(5, 7, requires_grad=True)
    _distill(q.sqrt(), off).backward()
    assert off.grad.abs().max() > 1e-3


def test_unknown_loss_kind_is_one_clear_error():
    with pytest.raises(UserError, match="unknown loss.kind 'distil'; use one of softmax, sigmoid, distill"):
        LossConfig(kind="distil")


def test_sqrt_softmax_text_embedding_keeps_a_finite_gradient_when_a_class_underflows():
    """The contrastive loss on a class-distribution model: softmax(z) = 0 somewhere must not give NaN."""
    from types import SimpleNamespace

    from lit_edge.model.text_tower import TextTower

    tower = SimpleNamespace(cfg=SimpleNamespace(output="sqrt_softmax"))
    logits = torch.tensor([[0.0, 200.0, -200.0, 1.0], [5.0, -300.0, 0.0, 2.0]], requires_grad=True)
    emb = TextTower.embed_from_head(tower, logits)  # the tower's own output function
    ref = torch.softmax(logits.detach(), dim=1).sqrt()
    assert torch.allclose(emb.detach(), ref, atol=1e-6)
    image = torch.nn.functional.normalize(torch.rand(2, 4), dim=1)
    _loss(image, emb, 50.0).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
