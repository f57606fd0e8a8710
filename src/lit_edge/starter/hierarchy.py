"""Which of the locked tower's 1,000 ImageNet classes lie below a WordNet synset.

The starter's embedding space is a distribution over the locked head's classes, so a name above
those classes (``Felis catus`` = ``domestic cat``, above the five cat breeds of ImageNet-1k) is
taught as the distribution spread over the classes it covers. A synset covers the 1k classes among
its hyponyms (the ``is-a`` tree) and, for taxonomic groups, among its members
(``genus Vulpes`` -> its species -> their ImageNet classes), so genus and family names work too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lit_edge.starter.wordnet import WordNet

#: Lemmas like ``genus Felis`` or ``family Felidae`` mark the synset of a taxonomic group.
TAXON_GROUP = re.compile(
    r"^(kingdom|subkingdom|phylum|subphylum|superclass|class|subclass|superorder|order|suborder|"
    r"superfamily|family|subfamily|tribe|genus|subgenus|division) [A-Z][a-z]+$"
)


@lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k synset ids in the locked head's output order (timm ships them)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return tuple(info.index_to_label_name(i) for i in range(info.num_classes()))


def is_taxon_group(wn: WordNet, synset_id: str) -> bool:
    """True for the synsets of genera, families, orders ... (they hold members, not hyponyms)."""
    return any(TAXON_GROUP.match(lemma) for lemma in wn[synset_id].lemmas)


def leaf_cover(wn: WordNet, classes: tuple[str, ...]) -> dict[str, frozenset[int]]:
    """Map every synset that covers at least one class to the indices of the classes it covers.

    Walks up from each class along hypernyms and member holonyms (the member links only from or
    into taxonomic groups, so ``crew`` or ``NATO`` style groupings are not followed); every synset
    on the way covers that class. A class covers itself.
    """
    cover: dict[str, set[int]] = {}
    for index, leaf in enumerate(classes):
        stack = [leaf]
        seen = set()
        while stack:
            sid = stack.pop()
            if sid in seen or sid not in wn:
                continue
            seen.add(sid)
            cover.setdefault(sid, set()).add(index)
            syn = wn[sid]
            stack.extend(syn.hypernyms)
            stack.extend(h for h in syn.member_holonyms if is_taxon_group(wn, h))
    return {k: frozenset(v) for k, v in cover.items()}
