"""``python -m scalebridge``: the same command line as the ``scalebridge`` script."""

from scalebridge.cli import main

if __name__ == "__main__":
    main()
