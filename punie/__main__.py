"""`python -m punie` is the `punie` command."""

from punie.cli import main

main()
