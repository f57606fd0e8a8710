"""``python -m lit_edge.train ...`` = ``lit-edge train ...``: the module torchrun launches.

torchrun --standalone --nproc_per_node=2 -m lit_edge.train run train/smoke.py
"""

from lit_edge.cli.app import app

if __name__ == "__main__":
    import sys

    app(["train", *sys.argv[1:]], prog_name="lit-edge train")
