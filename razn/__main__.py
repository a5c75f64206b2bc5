"""``python -m razn`` is the ``razn`` command."""

from razn.cli import main

main()
