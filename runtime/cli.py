"""The `circ` command line. Subcommands import what they need inside their bodies,
so that `circ check`, `fmt`, `plan` and `diff` never import torch."""
import click


@click.group()
@click.version_option(package_name="circ")
def main():
    """circ: check, plan, run, render and diff circuit hypotheses."""
