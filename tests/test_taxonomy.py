"""Taxa, captions and species lists, with real iNaturalist-2021 category records."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import pytest

from lit_edge.errors import UserError
from lit_edge.taxonomy import (
    TEMPLATES,
    Taxon,
    TextType,
    caption,
    read_species_list,
    zero_shot_texts,
)

# Category records as they appear in iNat-2021's train.json (id and dir name included, as there).
MONARCH = {
    "id": 6399,
    "name": "Danaus plexippus",
    "common_name": "Monarch",
    "supercategory": "Insects",
    "kingdom": "Animalia",
    "phylum": "Arthropoda",
    "class": "Insecta",
    "order": "Lepidoptera",
    "family": "Nymphalidae",
    "genus": "Danaus",
    "specific_epithet": "plexippus",
    "image_dir_name": "06399_Animalia_Arthropoda_Insecta_Lepidoptera_Nymphalidae_Danaus_plexippus",
}
EARTHWORM = {
    "id": 0,
    "name": "Lumbricus terrestris",
    "common_name": "Common Earthworm",
    "supercategory": "Animalia",
    "kingdom": "Animalia",
    "phylum": "Annelida",
    "class": "Clitellata",
    "order": "Haplotaxida",
    "family": "Lumbricidae",
    "genus": "Lumbricus",
    "specific_epithet": "terrestris",
}
PEPPERMINT = {  # a hybrid: the epithet carries a non-ASCII multiplication sign
    "name": "Mentha × piperita",
    "common_name": "",
    "kingdom": "Plantae",
    "phylum": "Tracheophyta",
    "class": "Magnoliopsida",
    "order": "Lamiales",
    "family": "Lamiaceae",
    "genus": "Mentha",
    "specific_epithet": "× piperita",
}


def test_from_inat_record():
    t = Taxon.from_dict(MONARCH)
    assert (t.kingdom, t.phylum, t.class_, t.order, t.family, t.genus, t.species) == (
        "Animalia",
        "Arthropoda",
        "Insecta",
        "Lepidoptera",
        "Nymphalidae",
        "Danaus",
        "plexippus",
    )
    assert t.common_name == "Monarch" and t.scientific_name == "Danaus plexippus"
    assert Taxon.from_dict(t.to_dict()) == t
    assert t.ranks()["class"] == "Insecta" and t.ranks()["species"] == "plexippus"


@pytest.mark.parametrize(
    ("text_type", "expected"),
    [
        (TextType.SCIENTIFIC, "a photo of Danaus plexippus."),
        (TextType.COMMON, "a photo of Monarch."),
        (
            TextType.TAXONOMIC,
            "a photo of Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus.",
        ),
        (TextType.SCIENTIFIC_COMMON, "a photo of Danaus plexippus with common name Monarch."),
        (
            TextType.TAXONOMIC_COMMON,
            "a photo of Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus with common name Monarch.",
        ),
        (
            TextType.METADATA,
            "a photo of Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus Monarch.",
        ),
    ],
)
def test_caption_text_types(text_type, expected):
    monarch = Taxon.from_dict(MONARCH)
    assert caption(monarch, text_type) == expected
    assert caption(monarch, text_type.value) == expected  # config files hold the string


def test_missing_common_name_falls_back_to_scientific():
    mint = Taxon.from_dict(PEPPERMINT)
    assert mint.common_name == ""
    assert caption(mint, TextType.COMMON) == "a photo of Mentha × piperita."
    assert caption(mint, TextType.SCIENTIFIC_COMMON) == "a photo of Mentha × piperita."
    assert caption(mint, TextType.TAXONOMIC_COMMON).endswith("Lamiaceae Mentha × piperita.")
    assert "common name" not in caption(mint, TextType.METADATA)


def test_non_ascii_names_are_nfc_normalised():
    decomposed = unicodedata.normalize("NFD", "Mésange charbonnière")
    assert decomposed != "Mésange charbonnière"
    tit = Taxon.from_name("Parus  major", common_name=decomposed, family="Paridae")
    assert tit.common_name == "Mésange charbonnière"  # composed form, equal to what a user types
    assert tit.scientific_name == "Parus major"  # whitespace collapsed
    assert (
        caption(tit, "common", template="a camera trap photo of {}.")
        == "a camera trap photo of Mésange charbonnière."
    )
    assert Taxon.from_name(unicodedata.normalize("NFD", "Mentha × piperita")) == Taxon.from_name(
        "Mentha × piperita"
    )


def test_taxa_above_species_and_full_binomials():
    genus_only = Taxon.from_name("Danaus")
    assert genus_only.scientific_name == "Danaus" and genus_only.species == ""
    family_only = Taxon(kingdom="Animalia", family="Nymphalidae")
    assert family_only.scientific_name == "Nymphalidae"
    assert caption(family_only, TextType.TAXONOMIC) == "a photo of Animalia Nymphalidae."
    # labels.csv style: 'species' may hold the binomial, 'scientific_name' the name
    row = {"scientific_name": "Lumbricus terrestris", "genus": "Lumbricus", "species": "Lumbricus terrestris"}
    assert Taxon.from_dict(row).species == "terrestris"
    assert Taxon.from_dict({"name": "Lumbricus terrestris"}) == Taxon(genus="Lumbricus", species="terrestris")
    assert Taxon.from_dict({"species": "Lumbricus terrestris"}) == Taxon(
        genus="Lumbricus", species="terrestris"
    )


def test_zero_shot_texts_one_per_template():
    worm = Taxon.from_dict(EARTHWORM)
    texts = zero_shot_texts(worm)
    assert len(texts) == len(TEMPLATES) >= 5
    assert texts[0] == "a photo of Lumbricus terrestris."
    assert "a camera trap photo of Lumbricus terrestris." in texts
    assert all("Lumbricus terrestris" in t for t in texts)
    assert zero_shot_texts(worm, templates=["{}"], text_type="common") == ["Common Earthworm"]


# species list files ------------------------------------------------------------------------------


def test_species_list_plain_text(tmp_path):
    path = tmp_path / "species.txt"
    path.write_text(
        "# my transect\nDanaus plexippus, Monarch\n\nLumbricus terrestris\nMentha × piperita, Peppermint\n",
        encoding="utf-8",
    )
    taxa = read_species_list(path)
    assert [t.scientific_name for t in taxa] == [
        "Danaus plexippus",
        "Lumbricus terrestris",
        "Mentha × piperita",
    ]
    assert [t.common_name for t in taxa] == ["Monarch", "", "Peppermint"]


def test_species_list_csv_with_inat_columns(tmp_path):
    import csv

    path = tmp_path / "species.csv"
    cols = [
        "name",
        "common_name",
        "kingdom",
        "phylum",
        "class",
        "order",
        "family",
        "genus",
        "specific_epithet",
    ]
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # Excel writes a BOM
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for rec in (MONARCH, EARTHWORM, PEPPERMINT):
            w.writerow(rec)
    taxa = read_species_list(path)
    assert taxa == [Taxon.from_dict(r) for r in (MONARCH, EARTHWORM, PEPPERMINT)]
    assert taxa[0].class_ == "Insecta"


def test_species_list_reads_a_bundle_labels_csv(tmp_path):
    from lit_edge.bundle import Label, write_labels

    labels = [
        Label(
            0,
            "Danaus plexippus",
            "Monarch",
            (("kingdom", "Animalia"), ("genus", "Danaus"), ("species", "plexippus")),
        ),
        Label(1, "Lumbricus terrestris", "", (("genus", "Lumbricus"), ("species", "terrestris"))),
    ]
    write_labels(tmp_path / "labels.csv", labels)
    taxa = read_species_list(tmp_path / "labels.csv")
    assert [(t.scientific_name, t.common_name, t.kingdom) for t in taxa] == [
        ("Danaus plexippus", "Monarch", "Animalia"),
        ("Lumbricus terrestris", "", ""),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "Danaus plexippus\nLumbricus terrestris\ndanaus  plexippus, Monarch\n",
            "line 3 repeats 'danaus plexippus'",
        ),
        ("# nothing but a comment\n\n", "species list is empty"),
        (", Monarch\n", "line 1 has no scientific name"),
        ("genus,specific_epithet,common_name\n,,Monarch\n", "row 2 names no taxon"),
    ],
)
def test_bad_species_lists_are_one_clear_line(tmp_path, content, message):
    path = tmp_path / "species.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as err:
        read_species_list(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_and_binary_species_lists(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_species_list(tmp_path / "nope.txt")
    (tmp_path / "latin1.txt").write_bytes("Parus major, Mésange\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_species_list(tmp_path / "latin1.txt")


def test_taxonomy_does_not_import_torch():
    code = "import sys, json, lit_edge.taxonomy; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'timm'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
