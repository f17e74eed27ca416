"""``python -m sclle ...``: the same command line as the ``sclle`` script."""

from sclle.cli import main

if __name__ == "__main__":
    main()
