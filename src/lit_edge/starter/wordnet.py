"""A small reader for WordNet 3.0's noun database (``data.noun``), the tree above ImageNet's classes.

ImageNet names its classes by WordNet 3.0 noun offsets (``n02121808`` is ``domestic cat``), so
WordNet's hypernym links tell which of the locked tower's 1,000 classes lie below any synset, and
its member holonyms (``domestic cat`` -> ``genus Felis`` -> ``family Felidae`` ...) give the ranks of
a species. We parse the plain-text database ourselves (a few dozen lines) instead of depending on
NLTK, whose data would have to be downloaded at run time. The file comes from Debian's
``wordnet-base`` package (``apt-get install wordnet-base``); ``$LIT_EDGE_WORDNET`` may point at
another copy of ``data.noun`` (or the folder that holds it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lit_edge.errors import UserError

DEFAULT_PATHS = (
    Path("/usr/share/wordnet/data.noun"),
    Path("/usr/local/share/wordnet/data.noun"),
    Path("/usr/share/wordnet/dict/data.noun"),
)

# Pointer symbols of data.noun that we follow (see WordNet's wndb(5)).
HYPERNYM = ("@", "@i")
HYPONYM = ("~", "~i")
MEMBER_HOLONYM = "#m"
MEMBER_MERONYM = "%m"
PART_HOLONYM = "#p"


@dataclass
class Synset:
    """One noun synset: its id as ImageNet spells it (``n`` + 8-digit offset), lemmas and links."""

    id: str
    lemmas: list[str]
    gloss: str
    hypernyms: list[str] = field(default_factory=list)
    hyponyms: list[str] = field(default_factory=list)
    member_holonyms: list[str] = field(default_factory=list)  # the groups it belongs to (its genus)
    member_meronyms: list[str] = field(default_factory=list)  # its members (a genus's species)
    part_holonyms: list[str] = field(default_factory=list)  # what it is a part of (car wheel -> car)

    @property
    def name(self) -> str:
        return self.lemmas[0]


@dataclass
class WordNet:
    """The noun synsets by id, with the path they were read from."""

    synsets: dict[str, Synset]
    path: Path

    def __getitem__(self, synset_id: str) -> Synset:
        return self.synsets[synset_id]

    def __contains__(self, synset_id: str) -> bool:
        return synset_id in self.synsets


def find_data_noun() -> Path:
    """Locate ``data.noun``: ``$LIT_EDGE_WORDNET`` first, then the usual Debian places."""
    env = os.environ.get("LIT_EDGE_WORDNET")
    candidates = []
    if env:
        p = Path(env).expanduser()
        candidates.append(p / "data.noun" if p.is_dir() else p)
    candidates.extend(DEFAULT_PATHS)
    for p in candidates:
        if p.is_file():
            return p
    raise UserError(
        f"WordNet 3.0 noun database not found (looked at {', '.join(str(c) for c in candidates)}); "
        "install it with: apt-get install wordnet-base (or set LIT_EDGE_WORDNET to a data.noun file)"
    )


def _lemma(word: str) -> str:
    # data.noun writes spaces as underscores and may mark adjectives' syntax as "(p)"; nouns rarely do.
    return word.replace("_", " ").split("(")[0]


def parse_line(line: str) -> Synset:
    """Parse one data line: ``offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ptrs | gloss``."""
    head, _, gloss = line.partition(" | ")
    f = head.split()
    offset = f[0]
    w_cnt = int(f[3], 16)
    words = [_lemma(f[4 + 2 * i]) for i in range(w_cnt)]
    i = 4 + 2 * w_cnt
    p_cnt = int(f[i])
    s = Synset(id="n" + offset, lemmas=words, gloss=gloss.strip())
    i += 1
    for _ in range(p_cnt):
        symbol, target, pos = f[i], f[i + 1], f[i + 2]
        i += 4
        if pos != "n":
            continue
        tid = "n" + target
        if symbol in HYPERNYM:
            s.hypernyms.append(tid)
        elif symbol in HYPONYM:
            s.hyponyms.append(tid)
        elif symbol == MEMBER_HOLONYM:
            s.member_holonyms.append(tid)
        elif symbol == MEMBER_MERONYM:
            s.member_meronyms.append(tid)
        elif symbol == PART_HOLONYM:
            s.part_holonyms.append(tid)
    return s


def read_wordnet(path: Path) -> WordNet:
    """Read every synset of a ``data.noun`` file (license header lines start with two spaces)."""
    synsets: dict[str, Synset] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  ") or not line.strip():
                    continue
                s = parse_line(line.rstrip("\n"))
                synsets[s.id] = s
    except (OSError, ValueError, IndexError) as exc:
        raise UserError(
            f"{path}: cannot read the WordNet noun database ({exc}); reinstall it with: "
            "apt-get install --reinstall wordnet-base"
        ) from exc
    return WordNet(synsets=synsets, path=path)


@lru_cache(maxsize=2)
def load_wordnet(path: str | None = None) -> WordNet:
    """The WordNet noun database, parsed once per process."""
    return read_wordnet(Path(path) if path else find_data_noun())
