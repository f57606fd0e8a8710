"""The starter's decisions on real, labelled field photos (``../shared/fieldset``), end to end.

The real CLI throughout: ``lit-edge export species --add "Ardea cinerea, Grey heron"`` on a copy
of the starter bundle, ``lit-edge tag`` of every labelled folder into a SQLite database, and the
decisions read back and judged by ``lit_edge.scorecard`` (what ``bench/bench_fieldset.py`` prints).
The bars are what the shipped starter reached (docs/starter-model.md), minus a little for the INT8
tower's noise; never more than that. The fieldset is a test set: nothing is fitted to it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lit_edge import scorecard
from lit_edge.bundle import read_labels
from lit_edge.cli.app import app

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def judged(fieldset, tmp_path_factory) -> list[scorecard.Judged]:
    from lit_edge.export.starter import ensure_starter_bundle
    from lit_edge.starter import species_list_path
    from lit_edge.starter.build import ensure_starter_checkpoint

    tmp = tmp_path_factory.mktemp("fieldset")
    bundle = tmp / "starter"
    shutil.copytree(ensure_starter_bundle(), bundle, ignore=shutil.ignore_patterns("engines"))
    add = runner.invoke(
        app,
        [
            "export",
            "species",
            str(ensure_starter_checkpoint()),
            "--bundle",
            str(bundle),
            "--add",
            "Ardea cinerea, Grey heron",
        ],
    )
    assert add.exit_code == 0, add.output
    db = tmp / "fieldset.db"
    for folder in sorted({Path(p).parts[0] for p, _ in scorecard.read_expected(fieldset)}):
        r = runner.invoke(
            app, ["tag", str(fieldset / folder), "--db", str(db), "-b", str(bundle), "--no-progress"]
        )
        assert r.exit_code == 0, r.output
    with sqlite3.connect(db) as con:
        rows = {
            Path(path).resolve(): (name or "", rank or "", score or 0.0, status)
            for path, name, rank, score, status in con.execute(
                "SELECT path, top_name, top_rank, top_score, status FROM media"
            )
        }
    judge = scorecard.Judge([*read_labels(bundle / "labels.csv"), *read_labels(species_list_path())])
    out = []
    for path, expected in scorecard.read_expected(fieldset):
        name, rank, score, status = rows[(fieldset / path).resolve()]
        if status != "done":
            name, rank, score = "", "", 0.0
        out.append(judge.judge(path, expected, name, rank, score))
    return out


def _show(rows) -> str:
    """The rows as a failure message shows them: what a CI log must say to explain a miss."""
    return "\n" + "\n".join(
        f"{r.path}: expected {r.expected}, decided {r.name} ({r.rank}) {r.score:.2f}: {r.verdict}"
        for r in rows
    )


def _of(rows, folder=None, expected=None):
    return [
        r
        for r in rows
        if (folder is None or r.path.startswith(folder))
        and (expected is None or r.expected.casefold() == expected)
    ]


def test_no_confident_wrong_decision(judged):
    # a wrong decision at a score >= 0.9 is what a user accepts unseen
    wrong = scorecard.confident_wrong(judged)
    assert len(wrong) <= BARS["wrong >= 0.9"], [(r.path, r.name, r.score) for r in wrong]


def test_few_wrong_taxa_and_scores_that_mean_something(judged):
    c = scorecard.counts(judged)
    assert c[scorecard.WRONG_TAXON] <= BARS["wrong taxon"], _show(judged)
    assert scorecard.expected_calibration_error(judged) <= BARS["ece"], _show(judged)
    # the truncated elephant: a recorded failure, or (since decode keeps a late-cut JPEG's rows) decided
    assert c[scorecard.FAILED] <= 1


def test_blank_photos_are_blank(judged):
    blanks = _of(judged, expected="blank")
    assert len(blanks) == 10
    assert sum(r.verdict == scorecard.OUTCOME for r in blanks) >= BARS["blank right"], _show(blanks)


def test_people_and_vehicles(judged):
    people = _of(judged, expected="homo sapiens")
    vehicles = _of(judged, expected="vehicle")
    assert sum(r.verdict == scorecard.OUTCOME for r in people) >= BARS["human right"], _show(people)
    assert sum(r.verdict == scorecard.OUTCOME for r in vehicles) >= BARS["vehicle right"], _show(vehicles)


def test_herons_are_never_dogs_and_cats_and_dogs_keep_their_species(judged):
    herons = _of(judged, folder="heron/")
    assert len(herons) == 10 and not any(r.name == "Canis familiaris" for r in herons), _show(herons)
    assert sum(r.verdict in scorecard.CORRECT for r in herons) >= BARS["heron true"], _show(herons)
    pets = {r.path: r.name for r in judged if r.path in ("scenes/bottle_0.jpg", "scenes/object_1.jpg")}
    elephants = _of(judged, expected="loxodonta africana")
    # named as far as the head's evidence goes: the species, or a taxon above it (Mammalia)
    assert (
        sum(r.verdict in (scorecard.RIGHT, scorecard.COARSER) for r in elephants) >= BARS["elephants named"]
    ), _show(elephants)
    named = sum(r.verdict in (scorecard.RIGHT, scorecard.COARSER) for r in judged)
    assert named >= BARS["animals named"], _show(judged)
    assert pets["scenes/object_1.jpg"] == "Canis familiaris"
    assert pets["scenes/bottle_0.jpg"] in ("Felis catus", "Felis")  # 0.53 today: its genus at worst


#: What the shipped starter reached on the fieldset (docs/starter-model.md), minus a little.
BARS = {
    "wrong >= 0.9": 2,  # reached 1 (scenes/humans_3.jpg: children playing football, blank 0.97)
    "wrong taxon": 4,  # reached 3
    "ece": 0.2,  # reached 0.115 (0.181 before the unlisted animals' rows)
    "blank right": 7,  # reached 8 of 10
    "human right": 2,  # reached 3 of 9
    "vehicle right": 2,  # reached 2 of 3
    "heron true": 8,  # reached 9 of 10 (Aves or Chordata; one blank)
    "elephants named": 4,  # reached 5 of 5 (Mammalia 0.97-0.98; 'animal' before the unlisted rows)
    "animals named": 14,  # reached 17 (3 species, 14 a true higher taxon)
}
