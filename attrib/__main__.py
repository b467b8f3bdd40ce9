"""``python -m attrib``: the same CLI as the ``attrib`` command (for environments without the console script)."""

from attrib.cli import main

if __name__ == "__main__":
    main()
