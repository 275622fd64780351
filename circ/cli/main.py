"""The `circ` command line. Subcommands import what they need inside their bodies,
so that `circ check`, `fmt`, `plan` and `diff` never import torch."""
import sys

import click

INCLUDE_OUTSIDE = click.option(
    "--include-outside", is_flag=True,
    help="Allow `include` of files outside the spec's folder (their text is never shown).")


@click.group()
@click.version_option(package_name="circ")
def main():
    """circ: check, plan, run, render and diff circuit hypotheses."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", help="Check against this model instead of the spec's, as `run --model` "
              "would run it: demo, a local directory, a .gguf file or a cached model name.")
@INCLUDE_OUTSIDE
def check(files, model, include_outside):
    """Check specs: names, argument types, node ranges against the model."""
    from circ.cli.check import check_paths

    sys.exit(check_paths(files, sys.stderr, model, include_outside=include_outside))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; list files that would change and exit 1 if any.")
def fmt(files, check_only):
    """Rewrite specs in canonical layout (comments kept)."""
    from circ.cli.fmt import fmt_paths

    sys.exit(fmt_paths(files, check_only, sys.stdout, sys.stderr))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text",
              show_default=True, help="Output format.")
@click.option("--estimate", is_flag=True,
              help="Print the passes, FLOPs and activation memory the plan will need instead.")
@click.option("--model-shape", help="With --estimate: gpt2-small, llama-7b, chinchilla-70b or a "
                                    "config.json path [default: the spec's model].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="With --estimate: prompts per forward pass.")
@INCLUDE_OUTSIDE
def plan(file, fmt, estimate, model_shape, batch_size, include_outside):
    """Show the graph of operations a spec compiles to, or what it will cost."""
    if not estimate:
        if model_shape:
            raise click.UsageError("--model-shape goes with --estimate")
        from circ.cli.plan import plan_path

        sys.exit(plan_path(file, fmt, sys.stdout, sys.stderr, include_outside=include_outside))
    if fmt == "dot":
        raise click.UsageError("--estimate prints text or json")
    from circ.cli.estimate import estimate_path

    sys.exit(estimate_path(file, model_shape, batch_size, fmt, sys.stdout, sys.stderr,
                           include_outside=include_outside))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder for results.json, diagrams and report.html [default: out/SPEC]")
@click.option("--model", help="Run on this model instead: demo, a local HF folder, a .gguf file, "
                               "or a name in the local Hugging Face cache.")
@click.option("--device", help="Device to run on (cpu, cuda, cuda:1, mps).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True,
              help="Seed of every random choice (0 to 2**63-1).")
@click.option("--trust-remote-code", is_flag=True,
              help="Allow a model folder's own Python code to run (off by default).")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--resume", is_flag=True,
              help="Reuse the analyses that an earlier (interrupted) run into the same --out finished.")
@click.option("--device-map", help="Spread the model over devices: auto, balanced, a JSON object or a JSON "
                                   "file mapping modules to a GPU index, cpu or disk.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: run patching sweeps, curves and growth on a Ray cluster.")
@click.option("--address", help="With --executor ray: the cluster to join [default: a local one].")
@INCLUDE_OUTSIDE
@click.option("--per-prompt", is_flag=True,
              help="Also write every prompt's node values to per_prompt.json in the output folder, and show "
                   "their distributions and the prompts where the main nodes help least in report.html.")
def run(file, out_dir, model, device, batch_size, seed, trust_remote_code, quiet, resume, device_map,
        executor, address, include_outside, per_prompt):
    """Run a spec; exit 0 if every expectation holds, 1 if one fails, 2 if the spec,
    its data or its model is broken or the run could not finish."""
    from circ.cli.run import run_spec

    if address and executor != "ray":
        raise click.UsageError("--address goes with --executor ray")
    sys.exit(run_spec(file, out_dir, model=model, device=device, batch_size=batch_size, seed=seed,
                      trust_remote_code=trust_remote_code, progress=not quiet, resume=resume,
                      device_map=device_map, executor=executor, address=address,
                      include_outside=include_outside, per_prompt=per_prompt))


@main.command()
@click.argument("operands", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True)
@click.option("--threshold", type=float, default=0.01, show_default=True,
              help="Smallest change of a node's value that counts.")
@click.option("--results", nargs=2, help="Also compare these two results files.")
@click.option("--git", "git_driver", is_flag=True, help="Called by git as a diff driver.")
def diff(operands, fmt, threshold, results, git_driver):
    """Compare two specs, two results files, or both: OLD NEW (paths or REV:path)."""
    if git_driver:
        from circ.compiler.diff.git_driver import git_driver_main

        sys.exit(git_driver_main(list(operands), color=False))
    if len(operands) != 2:
        raise click.UsageError("diff takes exactly two operands: OLD NEW")
    from circ.compiler.diff.inputs import diff_main

    text, code = diff_main(operands[0], operands[1], fmt=fmt, threshold=threshold,
                           color=sys.stdout.isatty(), results=results or None)
    click.echo(text, nl=False, file=sys.stderr if code == 2 else sys.stdout)
    sys.exit(code)


@main.command()
@click.argument("source", type=click.Path(dir_okay=True, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output file: .svg, .png, .pdf or .dot.")
@click.option("--circuit", help="Which circuit to draw [default: the spec's first].")
def render(source, output, circuit):
    """Draw a circuit from a results.json (or folder) or, before a run, from a spec."""
    from circ.cli.render import render_path

    sys.exit(render_path(source, output, circuit, sys.stderr))


@main.command()
@click.argument("source", type=click.Path(dir_okay=True, exists=True))
@click.option("--format", "fmt", required=True, type=click.Choice(["eap-ig", "mib"]),
              help="eap-ig: EAP-IG's graph JSON; mib: MIB's circuit-localisation submission folder.")
@click.option("-o", "--output", type=click.Path(),
              help="Output file (eap-ig) [default: stdout] or folder (mib).")
@click.option("--circuit", help="The circuit whose edges are in_graph [default: the spec's first].")
@click.option("--analysis", help="The edges analysis whose scores are written [default: the only one].")
@click.option("--task", help="mib: MIB's name of the task (ioi, mcqa, arc-easy, ...).")
@click.option("--model", "model_name", help="mib: MIB's name of the model (gpt2, qwen2.5, llama3, ...).")
@click.option("--by-budget", is_flag=True,
              help="mib: one circuit per edge budget (0.1% to 50% of the model's edges) instead of scores.")
def export(source, fmt, output, circuit, analysis, task, model_name, by_budget):
    """Write a run's edge scores and one circuit for another tool (EAP-IG, MIB)."""
    from circ.cli.export import export_path

    sys.exit(export_path(source, fmt, output, circuit, analysis, sys.stdout, sys.stderr,
                         task=task, model=model_name, by_budget=by_budget))


@main.command()
def models():
    """List the models that can be loaded here without a download."""
    from circ.runtime.models.listing import list_models

    click.echo(list_models(), nl=False)
