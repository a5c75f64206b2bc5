"""``python -m razn`` is the ``razn`` command."""

from razn.cli import main

# The guard matters: worker processes are spawned, and spawning imports this module again.
if __name__ == "__main__":
    main()
