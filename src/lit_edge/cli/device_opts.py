"""Options shared by ``lit-edge tag`` and ``lit-edge detect`` (typer ``Annotated`` aliases).

They build the runtime's typed configs (:class:`EngineConfig`), so both commands choose a bundle,
a backend and a decision rule the same way. Defaults are not written here: every command takes
them from the config dataclasses (:mod:`lit_edge.device.config`), exposed as :data:`ENGINE`.
Only typer and the runtime's light modules are imported (no numpy, OpenCV or ONNX Runtime), so
``--help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lit_edge.device import backends
from lit_edge.device.backends import AUTO
from lit_edge.device.config import BackendConfig, ClassifyConfig, EngineConfig
from lit_edge.errors import UserError

#: The defaults of every engine option (one source: the config dataclasses).
ENGINE = EngineConfig()


def _backend(value: str) -> str:
    try:
        return backends.check_name(value)
    except UserError as exc:  # a usage error, like any other bad option value
        raise typer.BadParameter(str(exc)) from None


BundleOpt = Annotated[
    Path | None,
    typer.Option(
        "--bundle", "-b", help="Bundle folder or .tar. Default: the starter bundle ($LIT_EDGE_BUNDLE)."
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        callback=_backend,
        help=f"{' | '.join([AUTO, *backends.names()])}. "
        "auto picks the best available and logs it; a named one that is missing is an error.",
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision", help="fp32 | int8. Default: the backend's (int8 on CPU and TensorRT, fp32 on CUDA)."
    ),
]
ThreadsOpt = Annotated[
    int,
    typer.Option(
        "--threads",
        min=0,
        help="Intra-op threads per inference call (0 = the cores shared out among the --workers).",
    ),
]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, help="Species kept per photo/frame.")]
ThresholdOpt = Annotated[
    float,
    typer.Option(
        "--threshold", min=0.0, max=1.0, help="Probability a decision must reach, else roll up a rank."
    ),
]
MarginOpt = Annotated[
    float,
    typer.Option("--margin", min=0.0, max=1.0, help="Lead over the runner-up needed to name a species."),
]
BlankOpt = Annotated[
    float,
    typer.Option(
        "--blank-threshold",
        min=0.0,
        max=1.0,
        help="Share of the evidence the bundle's background rows need to call a photo blank (no animal).",
    ),
]
EmbeddingsOpt = Annotated[
    bool,
    typer.Option(
        "--embeddings/--no-embeddings",
        help="Keep each image's embedding (float16, about 2 KB) in the database, for review and learn.",
    ),
]
SpeciesOpt = Annotated[
    Path | None,
    typer.Option("--species", help="Restrict to these scientific names (a text file, one per line)."),
]


def engine_config(
    *,
    bundle: Path | None,
    backend: str,
    precision: str | None,
    threads: int,
    top_k: int,
    threshold: float,
    margin: float,
    species: Path | None,
    blank_threshold: float,
) -> EngineConfig:
    """The engine options of ``tag``/``detect`` as the typed config the runtime takes."""
    return EngineConfig(
        bundle=bundle,
        backend=BackendConfig(backend=backend, precision=precision, threads=threads),
        classify=ClassifyConfig(
            top_k=top_k,
            threshold=threshold,
            margin=margin,
            species_file=species,
            blank_threshold=blank_threshold,
        ),
    )
