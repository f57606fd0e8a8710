"""The outcomes of a decision that are not taxa, and what they become in the field-data standards.

One home for these names: the classifier decides them (``Decision.rank``), the database stores them
(``media.top_rank``), the summary counts them, and the exports map them to Camtrap DP's
``observationType``. Importing the constants from here (never spelling the strings) keeps the four
in step.

Decided levels (``media.top_rank``) besides the taxonomic ranks:

``blank``      no animal, person or vehicle (the bundle's background rows hold the evidence)
``human``      a person is in view (camera-trap projects rank people first: privacy)
``vehicle``    a vehicle and no person
``animal``     an animal that none of the kept rows explains ("animal, not in the list")
``uncertain``  the model could not decide with enough confidence
"""

from __future__ import annotations

BLANK = "blank"
HUMAN = "human"
VEHICLE = "vehicle"
ANIMAL = "animal"
UNCERTAIN = "uncertain"

#: Decided levels that are not a taxon's rank.
NON_TAXON = (BLANK, HUMAN, VEHICLE, ANIMAL, UNCERTAIN)

# Camtrap DP 1.0 observationType values (the media-level observation of a photo or an event).
OBS_ANIMAL, OBS_HUMAN, OBS_VEHICLE, OBS_BLANK, OBS_UNKNOWN, OBS_UNCLASSIFIED = (
    "animal",
    "human",
    "vehicle",
    "blank",
    "unknown",
    "unclassified",
)
