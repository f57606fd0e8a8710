"""`lit-edge bundle` commands: inspect and verify bundles (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

BundleArg = Annotated[
    Path | None, typer.Argument(help="Bundle folder or .tar (default: the default bundle).")
]


@app.command("path")
def path() -> None:
    """Print the default bundle's folder (``$LIT_EDGE_BUNDLE`` or the starter bundle)."""
    from lit_edge import bundle as bf

    typer.echo(str(bf.default_path()))


@app.command("info")
def info(bundle: BundleArg = None) -> None:
    """Describe a bundle: model, species count, files, precision flavours."""
    from rich.console import Console
    from rich.table import Table

    from lit_edge import bundle as bf

    b = bf.load(bundle or bf.default_path())
    m = b.manifest
    console = Console()
    console.print(f"[bold]{b.root}[/bold]")
    console.print(
        f"model {m.model.name} ({m.model.embed_dim}-d, logit scale {m.model.logit_scale:g}), "
        f"{_classes(b)}, input {m.preprocess.input_size[0]}x{m.preprocess.input_size[1]} "
        f"{m.preprocess.colour_order} {m.preprocess.layout}, created {m.created or '?'}"
    )
    console.print(f"image towers: {', '.join(sorted(m.image_towers))}")
    console.print(f"classifiers: {', '.join(sorted(m.classifiers)) or 'none'}")
    learned = m.extra.get("learn")
    if learned:  # written by 'lit-edge learn': say where it came from
        cv = learned.get("cv", {})
        sources = ", ".join(s["path"] for s in learned.get("sources", [])) or "arrays"
        console.print(
            f"learned from {sum(learned.get('counts', {}).values())} verified photos ({sources}); "
            f"parent {learned.get('parent', {}).get('path', '?')}; method {learned.get('method')} "
            f"{learned.get('param')}; held-out top-1 {cv.get('text_rows', {}).get('right')} -> "
            f"{cv.get('chosen', {}).get('right')} of {cv.get('species_photos')}; "
            f"added: {', '.join(learned.get('added_species', [])) or 'none'}"
        )
    table = Table("file", "MB", "sha256")
    for name, meta in sorted(m.files.items()):
        table.add_row(name, f"{meta['bytes'] / 1e6:.2f}", meta["sha256"][:16])
    console.print(table)
    engines = sorted(b.engines_dir.glob("*.engine")) if b.engines_dir.is_dir() else []
    if engines:
        console.print("engines: " + ", ".join(e.name for e in engines))


@app.command("verify")
def verify(bundle: Annotated[Path, typer.Argument(help="Bundle folder or .tar.")]) -> None:
    """Check the format version and every file's size and sha256; exit 2 on the first problem."""
    from lit_edge import bundle as bf

    b = bf.load(bundle)
    _ = b.text_embeddings  # also checks the matrix against labels.csv
    typer.echo(f"ok: {b.root} ({len(b.manifest.files)} files, {_classes(b)})")


def _classes(b) -> str:
    """'725 species' or '124 species + 462 background rows + 59 human + 79 vehicle rows':
    outcome rows (blank, human, vehicle) are not species."""
    count = {k: sum(lab.outcome == k for lab in b.labels) for k in ("blank", "human", "vehicle")}
    text = f"{len(b.labels) - sum(count.values())} species"
    text += f" + {count['blank']} background rows" if count["blank"] else ""
    return text + "".join(f" + {n} {k} rows" for k, n in count.items() if k != "blank" and n)
