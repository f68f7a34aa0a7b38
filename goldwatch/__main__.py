"""``python -m goldwatch``: the same command line as the ``goldwatch`` script (handy where only Python is on PATH)."""

from goldwatch.cli import main

if __name__ == "__main__":
    main(prog_name="goldwatch")
