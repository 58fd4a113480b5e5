"""Command-line interface: one thin subcommand per verb over library functions."""
