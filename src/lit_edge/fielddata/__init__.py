"""Field data out: the detection database in the formats ecologists' tools already read.

Torch-free, like the runtime. ``records`` reads the database written by ``lit-edge tag``/``detect``;
``deployments`` and ``events`` add the camera-trap structure (where, when, which burst); each
writer turns that into one format: ``camtrapdp`` (GBIF, camtrapR), ``megadetector`` (Timelapse),
``csvout`` (spreadsheets, R), ``xmp`` (digiKam, Lightroom, darktable), ``report`` (one HTML file),
``summary`` (the terminal).
"""
