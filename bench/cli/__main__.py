"""``python -m bench.cli``: the ``bench`` command (as torchrun starts it)."""

from bench.cli import main

main()
