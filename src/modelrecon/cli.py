"""The command line: a thin typer app over the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from modelrecon import report

app = typer.Typer(help="Reconstruct ML models through their query interface.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
attack_app = typer.Typer(help="Run one attack against a target.", no_args_is_help=True)
app.add_typer(attack_app, name="attack")

TargetOpt = Annotated[str, typer.Option("--target", "-t", help="target spec: builtin:NAME?k=v, file.pt, file.onnx, module:callable")]
OracleOpt = Annotated[Optional[str], typer.Option("--oracle", help="query kinds offered, comma-separated (default: all the target answers)")]
BudgetOpt = Annotated[Optional[int], typer.Option("--budget", help="total query budget")]
BudgetsOpt = Annotated[Optional[str], typer.Option("--budget-per-kind", help="e.g. gradient=100,value=50")]
JournalOpt = Annotated[Optional[Path], typer.Option("--journal", help="SQLite journal: audit, replay, resume")]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="write the result JSON here")]
RoundOpt = Annotated[Optional[int], typer.Option("--round", help="oracle rounds answers to this many decimals")]
SpaceOpt = Annotated[str, typer.Option("--explain-space", help="explanations of the logit or of the probability")]


class CliError(Exception):
    pass


def make_oracle(target_spec: str, oracle: str | None, budget: int | None, budget_per_kind: str | None,
                journal: Path | None, round_decimals: int | None = None, explain_space: str = "logit", **options):
    from modelrecon.oracle import local_oracle
    from modelrecon.targets import load

    target = load(target_spec)
    kinds = [k.strip() for k in oracle.split(",")] if oracle else None
    budgets = {}
    for item in (budget_per_kind or "").split(","):
        if item.strip():
            kind, _, n = item.partition("=")
            if not n.strip().isdigit():
                raise CliError(f"--budget-per-kind wants KIND=N items, got {item!r}")
            budgets[kind.strip()] = int(n)
    return target, local_oracle(target, kinds, budget=budget, budgets=budgets, journal=journal,
                                round_decimals=round_decimals, explain_space=explain_space, **options)


def finish(result, target, json_path: Path | None, data=None) -> None:
    from modelrecon.evaluate import evaluate

    evaluate(result, target, data)
    report.show(result)
    if json_path:
        result.save_json(json_path)
        report.console.print(f"result written to {json_path}")
    if result.status == "failed":
        raise typer.Exit(2)


@attack_app.command("linear")
def attack_linear(
    target: TargetOpt = "builtin:logistic?d=784",
    oracle: OracleOpt = None,
    method: Annotated[str, typer.Option(help="auto | gradient | explanation | equations")] = "auto",
    explanation: Annotated[Optional[str], typer.Option(help="explanation method to use (e.g. input-x-gradient)")] = None,
    verify: Annotated[int, typer.Option(help="fresh queries spent verifying the recovered model")] = 2,
    budget: BudgetOpt = None,
    budget_per_kind: BudgetsOpt = None,
    journal: JournalOpt = None,
    round_decimals: RoundOpt = None,
    explain_space: SpaceOpt = "logit",
    json: JsonOpt = None,
) -> None:
    """Exact recovery of a linear or logistic model (Milli et al. 2019; Tramer et al. 2016 baseline)."""
    from modelrecon.attacks.linear import LinearAttack

    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal, round_decimals, explain_space)
    finish(LinearAttack(method=method, explanation=explanation, verify=verify).run(o), t, json)


@app.command("obfuscate")
def obfuscate_cmd(
    target: TargetOpt = "builtin:digits-mlp",
    span: Annotated[Optional[Path], typer.Option("--span", help="basis of the first layer's row span: .npz (key basis) or .npy, (r x n) rows")] = None,
    recover: Annotated[bool, typer.Option("--recover", help="recover the span first with the span attack (instead of --span)")] = False,
    setting: Annotated[str, typer.Option("--setting", help="--recover: relu-value (value queries) | threshold (label queries)")] = "relu-value",
    span_output: Annotated[int, typer.Option("--span-output", help="--recover: the class whose logit (relu-value) or 'top class is C' label (threshold) the span attack follows")] = 0,
    span_points: Annotated[str, typer.Option("--span-points", help="--recover: region (query where obfuscated inputs live) | box (the span attack's own points)")] = "region",
    inputs: Annotated[str, typer.Option("--inputs", help="digits (the test split) or a .npy/.npz file of inputs (key X)")] = "digits",
    n_inputs: Annotated[Optional[int], typer.Option("--n-inputs", help="use only the first N inputs")] = None,
    noise: Annotated[float, typer.Option("--noise", help="noise-to-signal ratio ||z|| / ||x||")] = 10.0,
    clip: Annotated[bool, typer.Option("--clip", help="clip obfuscated inputs to the input box (breaks the invariance)")] = False,
    project: Annotated[bool, typer.Option("--project", help="nearest in-box input that keeps the invariance (exact QP)")] = False,
    target_class: Annotated[Optional[int], typer.Option("--target-class", help="reverse direction: noise-looking inputs of this class")] = None,
    count: Annotated[int, typer.Option("--count", help="how many inputs --target-class builds")] = 10,
    curve: Annotated[Optional[str], typer.Option("--curve", help="ratios for the label-preserved curve, e.g. 0,1,2,5,10 (evaluator side)")] = None,
    seed: Annotated[int, typer.Option(help="noise seed")] = 0,
    oracle: OracleOpt = None,
    budget: BudgetOpt = None,
    budget_per_kind: BudgetsOpt = None,
    journal: JournalOpt = None,
    out: Annotated[Path, typer.Option("--out", help="folder for the pictures and the obfuscated inputs")] = Path("out/obfuscate"),
    json: JsonOpt = None,
) -> None:
    """Hide inputs in noise the network cannot see (Jayaram, Woodruff, Zhang 2020), given its first layer's span."""
    from modelrecon.obfuscate_study import run_cli

    if clip and project:
        raise CliError("--clip and --project are alternatives: pick one")
    if (span is None) == (not recover):
        raise CliError("give the span: --span FILE (.npz with key 'basis', or .npy) or --recover, not both")
    if recover and oracle is None:
        oracle = "value" if setting == "relu-value" else "label"
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal)
    recovery = {"setting": setting, "output": span_output, "points": span_points} if recover else None
    result = run_cli(t, o, span=span, recover=recovery, inputs=inputs, n_inputs=n_inputs, noise=noise,
                     clip="clip" if clip else "project" if project else "none", target_class=target_class,
                     count=count, curve=curve, seed=seed, out=out)
    finish(result, t, json)
    report.console.print(f"pictures and obfuscated inputs in {out}/")


@attack_app.command("span")
def attack_span(
    target: TargetOpt = "builtin:mlp?d=100&widths=10,40&k=1&act=relu",
    setting: Annotated[str, typer.Option(help="relu-value (value queries, ReLU) | threshold (labels, smooth activations)")] = "relu-value",
    oracle: OracleOpt = None,
    source: Annotated[str, typer.Option(help="auto | value | label | gradient | an explanation method")] = "auto",
    output: Annotated[Optional[int], typer.Option(help="class index to follow on a multi-output target")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="expected span dimension (stop there); default: until it stops growing")] = None,
    design: Annotated[str, typer.Option(help="complement (adaptive, fewer queries) | full (non-adaptive gradients)")] = "complement",
    step: Annotated[Optional[float], typer.Option(help="finite-difference step (default 1e-4 x input scale)")] = None,
    precision: Annotated[float, typer.Option(help="threshold setting: bisection width / step")] = 1e-7,
    patience: Annotated[int, typer.Option(help="stop after this many fresh points add no direction")] = 6,
    threshold: Annotated[float, typer.Option(help="oracle: label threshold on a scalar output")] = 0.0,
    label_format: Annotated[str, typer.Option(help="oracle: 01 or sign labels")] = "01",
    seed: Annotated[int, typer.Option(help="random seed of the query points")] = 0,
    budget: BudgetOpt = None,
    budget_per_kind: BudgetsOpt = None,
    journal: JournalOpt = None,
    round_decimals: RoundOpt = None,
    basis_out: Annotated[Optional[Path], typer.Option("--basis", help="write the recovered basis (.npz)")] = None,
    json: JsonOpt = None,
) -> None:
    """Recover the row span of the first layer (Jayaram, Woodruff, Zhang, ICLR 2020)."""
    from modelrecon.attacks.span import SpanRecovery

    if oracle is None and source == "auto":
        oracle = "value" if setting == "relu-value" else "label"
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal, round_decimals, threshold=threshold,
                       label_format=label_format)
    attack = SpanRecovery(setting=setting, source=source, output=output, k=k, design=design, step=step,
                          precision=precision, patience=patience, seed=seed)
    result = attack.run(o)
    if basis_out:
        result.save_params(basis_out)
    finish(result, t, json)


study_app = typer.Typer(help="Grids of attack runs: tables, plots and JSON.", no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command("span")
def study_span(
    out: Annotated[Path, typer.Option(help="folder for span_study.json and span_recovered_dim.png")] = Path("out/span"),
    quick: Annotated[bool, typer.Option("--quick", help="a CI-sized grid (n=100, k=10)")] = False,
) -> None:
    """Span recovery on random ReLU/tanh networks (n, k, depth, width) and trained digits networks."""
    from modelrecon.studies.span import run_study, table

    rows = run_study(out, quick=quick)
    report.console.print(table(rows))
    report.console.print(f"JSON and plot in {out}/")


@app.command()
def targets() -> None:
    """List the built-in targets and their parameters."""
    from modelrecon.targets.zoo import ZOO

    t = report.comparison_table("built-in targets (builtin:NAME?key=value&...)", ["name", "what", "parameters (default)"],
                                [(e.name, e.description, "\n".join(f"{k}={v[0]!r}: {v[1]}" for k, v in e.params.items()))
                                 for e in ZOO.values()])
    report.console.print(t)
    report.console.print("Also: path/to/model.pt (TorchScript), path/to/model.onnx (values only), package.module:callable")


@app.command()
def demo(out: Annotated[Path, typer.Option(help="folder for the result JSON files")] = Path("out/demo")) -> None:
    """The main job on built-in targets: every attack, its queries and its errors, side by side."""
    from modelrecon.demo import run_demo

    run_demo(out)


def main() -> None:
    from modelrecon.data import DatasetMissing
    from modelrecon.oracle import OracleError
    from modelrecon.targets import TargetSpecError

    try:
        app()
    except (CliError, OracleError, TargetSpecError, DatasetMissing, ValueError) as e:
        report.console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
