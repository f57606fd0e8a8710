"""`lit-edge tag --shard I/N`: a split by path hash that every task agrees on, Slurm's array
variables read by themselves, one database per shard, and bad shards as one-line errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundle_factory import COLOURS, make_bundle, solid, write_jpeg
from lit_edge.cli.app import app
from lit_edge.device import shard as sharding
from lit_edge.device.sources import list_files, parse_address
from lit_edge.errors import UserError

runner = CliRunner()


def _tree(root: Path, n: int) -> list[Path]:
    """n empty .jpg names in a few sub-folders (the split never opens a file)."""
    paths = []
    for i in range(n):
        p = root / f"cam{i % 3}" / f"day{i % 5}" / f"IMG_{i:05d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
        paths.append(p)
    return paths


def _split(root: Path, count: int) -> list[list[Path]]:
    files = list_files(parse_address(str(root)))
    return [sharding.select(files, root, sharding.Shard(i, count)) for i in range(count)]


def test_shards_partition_the_folder_evenly_and_stay_put_when_photos_are_added(tmp_path):
    root = tmp_path / "photos"
    _tree(root, 2000)
    parts = _split(root, 4)
    every = [p for part in parts for p in part]
    assert len(every) == len(set(every)) == 2000  # each photo in exactly one shard
    assert all(350 <= len(part) <= 650 for part in parts), [len(p) for p in parts]  # ~500 each

    for i in range(300):  # a new card copied in, into new and existing folders
        p = root / f"cam{i % 4}" / "new" / f"N_{i:04d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    after = _split(root, 4)
    for before, now in zip(parts, after, strict=True):
        assert set(before) <= set(now)  # no photo moved to another shard
    assert sum(len(p) for p in after) == 2300


def test_the_split_depends_on_the_path_inside_the_folder_not_where_it_is_mounted(tmp_path):
    a, b = tmp_path / "mnt" / "card", tmp_path / "data" / "elsewhere" / "photos"
    _tree(a, 200)
    _tree(b, 200)
    rel = lambda parts, root: [sorted(p.relative_to(root).as_posix() for p in part) for part in parts]  # noqa: E731
    assert rel(_split(a, 3), a) == rel(_split(b, 3), b)
    # and a relative folder argument splits like its absolute path
    files = list_files(parse_address(str(a)))
    rel_files = [Path(p).relative_to(tmp_path) for p in files]
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert [tmp_path / p for p in sharding.select(rel_files, Path("mnt/card"), sharding.Shard(1, 3))] == (
            sharding.select(files, a, sharding.Shard(1, 3))
        )
    finally:
        os.chdir(cwd)


def test_a_glob_is_split_relative_to_its_fixed_prefix(tmp_path):
    assert sharding.base_of("glob", f"{tmp_path}/cam*/**/*.jpg") == tmp_path
    assert sharding.base_of("folder", str(tmp_path)) == tmp_path
    assert sharding.base_of("image", str(tmp_path / "a.jpg")) == tmp_path


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SLURM_JOB_ID": "7"}, None),  # a job, not an array
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
          "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_STEP": "1"}, (2, 4)),
        # --array=1-4: task 1 is shard 0
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1",
          "SLURM_ARRAY_TASK_MAX": "4", "SLURM_ARRAY_TASK_STEP": "1"}, (0, 4)),
        # --array=10-16:2 -> tasks 10, 12, 14, 16
        ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10",
          "SLURM_ARRAY_TASK_MAX": "16", "SLURM_ARRAY_TASK_STEP": "2"}, (2, 4)),
    ],
)  # fmt: skip
def test_slurm_array_variables_give_the_shard(env, expected):
    got = sharding.resolve(None, env)
    assert (None if got is None else (got.index, got.count)) == expected


def test_an_array_that_is_not_a_range_needs_an_explicit_shard():
    # sbatch --array=3,7 (resubmitting two failed shards of 16): N is not knowable
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "3",
           "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_STEP": "1"}  # fmt: skip
    with pytest.raises(UserError, match="pass --shard 7/N explicitly"):
        sharding.resolve(None, env)
    assert str(sharding.resolve("7/16", env)) == "7/16"  # an explicit --shard wins


def test_shard_names_sort_and_say_the_shard():
    names = [sharding.Shard(i, 12).db_name() for i in range(12)]
    assert names[3] == "lit-edge.shard-03-of-12.db" and names == sorted(names)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _paths(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {Path(r[0]).name for r in con.execute("SELECT path FROM media")}
    finally:
        con.close()


def test_tag_shards_write_their_own_databases_that_together_hold_every_photo(tmp_path, bundle, monkeypatch):
    photos = tmp_path / "photos"
    names = list(COLOURS)
    for d in ("d0", "d1"):
        (photos / d).mkdir(parents=True)
    for i in range(24):
        write_jpeg(photos / f"d{i % 2}" / f"{i:03d}.jpg", solid(COLOURS[names[i % 4]]))
    common = ["--bundle", str(bundle), "--no-progress", "--workers", "1", "--threads", "1"]
    seen: list[set[str]] = []
    for i in range(3):
        r = runner.invoke(app, ["tag", str(photos), "--shard", f"{i}/3", *common])
        assert r.exit_code == 0, r.output
        db = photos / f"lit-edge.shard-{i}-of-3.db"
        seen.append(_paths(db))
        con = sqlite3.connect(db)
        try:
            assert con.execute("SELECT shard FROM runs").fetchall() == [(f"{i}/3",)]  # runs.shard
        finally:
            con.close()
        expected = sharding.select(list_files(parse_address(str(photos))), photos, sharding.Shard(i, 3))
        assert seen[-1] == {p.name for p in expected}
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == 24
    assert not (photos / "lit-edge.db").exists()

    # under a Slurm array task with --db naming a folder: the shard comes from the environment
    out = tmp_path / "dbs"
    out.mkdir()
    for var, value in {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1",
                       "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_STEP": "1"}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    r = runner.invoke(app, ["tag", str(photos), "--db", str(out), *common])
    assert r.exit_code == 0, r.output
    assert [p.name for p in out.iterdir() if p.suffix == ".db"] == ["lit-edge.shard-1-of-3.db"]
    assert _paths(out / "lit-edge.shard-1-of-3.db") == seen[1]
    assert r.output.startswith("shard 1/3: tagged")


@pytest.mark.parametrize(
    ("shard", "message"),
    [("3/3", "the index must be 0 to 2"), ("1-4", "give I/N"), ("a/4", "give I/N"), ("1/0", "give I/N")],
)
def test_bad_shards_are_one_line_errors(tmp_path, bundle, shard, message):
    (tmp_path / "p").mkdir()
    write_jpeg(tmp_path / "p" / "a.jpg", solid((1, 2, 3)))
    r = runner.invoke(app, ["tag", str(tmp_path / "p"), "--shard", shard, "--bundle", str(bundle)])
    assert r.exit_code == 2 and message in r.output and r.output.startswith("error: ")
    assert r.output.count("\n") == 1


def test_a_slurm_task_uses_only_the_cpus_it_was_given(monkeypatch):
    from lit_edge.device.threads import usable_cores

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    free = usable_cores()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert usable_cores() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "512")
    assert usable_cores() == free  # never more than the process may run on
