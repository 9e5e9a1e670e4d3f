"""Glue for ``modelrecon obfuscate`` and ``benchmarks/obfuscate.py``: inputs, the attack run,
the pictures.  The attack part sees only the oracle and the basis; the control rows of the
pictures and the curves are evaluator-side (they run the true network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelrecon import report
from modelrecon.studies import obfuscate_plots
from modelrecon.attacks.obfuscate import (Obfuscation, ObfuscationError, load_array, load_basis, obfuscate,
                                         random_basis)
from modelrecon.result import Result
from modelrecon.targets import Target


def load_inputs(spec: str, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs to obfuscate, candidate exemplars for --target-class).

    ``digits`` / ``mnist``: the test split, and the attacker's unlabeled pool as candidates
    (shaped as the target's inputs); a ``.npy`` / ``.npz`` (key ``X``) file: its inputs, which
    are also the candidates."""
    if spec in ("digits", "mnist"):
        from modelrecon import data

        ds = data.load(spec)
        shape = lambda X: X.reshape(len(X), *input_shape)  # noqa: E731
        return shape(ds.X_test), shape(ds.X_pool)
    if not Path(spec).exists():
        raise ObfuscationError(f"--inputs must be 'digits', 'mnist' or an existing .npy/.npz file; {spec!r} is neither")
    X = load_array(spec, "X", "inputs")
    return X, X


def _images(X: np.ndarray, k: int) -> np.ndarray:
    return X[:k].reshape(min(k, len(X)), -1)


def picture_rows(result: Result, target: Target, k: int = 10) -> list[dict[str, Any]]:
    """Rows of the grid: originals and obfuscated inputs with the oracle's labels and
    confidences (what the attacker saw), then the random-subspace control (true network)."""
    from modelrecon.evaluate.obfuscate import softmax, top1

    p, hp = result.params, result.details.get("hyperparameters", {})
    X, Xp = p["inputs"], p["obfuscated"]
    rows: list[dict[str, Any]] = []
    if result.details.get("mode") == "class":
        rows.append({"title": "exemplar", "images": _images(np.repeat(p["exemplar"][None], k, 0), k),
                     "labels": p.get("labels", [None] * k)[:k], "confidence": p.get("confidence", [None] * k)[:k]
                     if "confidence" in p else None})
    else:
        rows.append({"title": "original", "images": _images(X, k), "labels": p.get("labels", None),
                     "confidence": p.get("confidence")})
    ref = p.get("labels")
    rows.append({"title": f"obfuscated\n(ratio {hp.get('noise', '?')})", "images": _images(Xp, k),
                 "labels": p.get("labels_obfuscated"), "confidence": p.get("confidence_obfuscated"),
                 "reference": ref})
    if result.details.get("mode") != "class":
        B = p["basis"]
        Xc, _ = obfuscate(X[:k], random_basis(B.shape[0], B.shape[1], seed=int(hp.get("seed", 0)) + 7919),
                          float(hp.get("noise", 5.0)), int(hp.get("seed", 0)), hp.get("clip", "none"), target.input_box)
        v = target.forward_numpy(Xc)
        rows.append({"title": "control:\nrandom subspace", "images": _images(Xc, k), "labels": top1(v),
                     "confidence": softmax(v).max(1), "reference": ref})
    for row in rows:
        if row.get("labels") is not None:
            row["labels"] = np.asarray(row["labels"])[:k]
        if row.get("confidence") is not None:
            row["confidence"] = np.asarray(row["confidence"])[:k]
        if row.get("reference") is not None:
            row["reference"] = np.asarray(row["reference"])[:k]
    return rows


def run_cli(target: Target, oracle, *, span: Path | None, recover: dict[str, Any] | None, inputs: str,
            n_inputs: int | None, noise: float, clip: str, target_class: int | None, count: int, curve: str | None,
            seed: int, out: Path) -> Result:
    X, candidates = load_inputs(inputs, oracle.input_shape)
    if n_inputs is not None:
        X = X[:n_inputs]
    B = load_basis(span) if recover is None else None
    attack_inputs = candidates if target_class is not None else X
    if recover is not None:
        recover = {**recover, "centres": candidates}  # the attacker's own inputs, noised, as query points
    result = Obfuscation(B, attack_inputs, noise=noise, clip=clip, target_class=target_class, count=count,
                         seed=seed, span_source=str(span), recover=recover).run(oracle)
    if "span_recovery" in result.details:
        report.console.print(f"span recovery: {result.details['span_recovery']['status']}: "
                             f"{result.details['span_recovery']['message']}")
    out.mkdir(parents=True, exist_ok=True)
    if "basis" in result.params:
        np.savez(out / "span.npz", basis=result.params["basis"])
    if "obfuscated" in result.params:
        np.savez(out / "obfuscated.npz", **{k: np.asarray(v) for k, v in result.params.items() if v is not None})
        shape = tuple(oracle.input_shape[-2:]) if len(oracle.input_shape) >= 2 else None
        obfuscate_plots.grid(picture_rows(result, target), out / "grid.png", image_shape=shape,
                             title=f"{target.spec}: {result.message.split(';')[0]}")
        result.details["pictures"] = [str(out / "grid.png")]
    if curve and "basis" in result.params:
        from modelrecon.evaluate.obfuscate import curve as curve_rows, true_span

        ratios = [float(r) for r in curve.split(",") if r.strip()]
        bases = {"recovered span" if recover is not None else "given span": result.params["basis"]}
        Bt = true_span(target)
        if Bt is not None:
            bases["true span"] = Bt
        Bg = result.params["basis"]
        bases["random subspace"] = random_basis(Bg.shape[0], Bg.shape[1], seed=seed + 7919)
        rows = curve_rows(target, X, bases, ratios, seed, clip)
        obfuscate_plots.curve(rows, out / "curve.png", chance=1.0 / max(oracle.n_outputs, 2),
                              title=f"{target.spec}, span dim {Bg.shape[0]}, clip={clip}")
        result.details["curve"] = [{k: r[k] for k in ("span", "ratio", "label_preserved_rate", "cosine_to_original")}
                                   for r in rows]
        result.details.setdefault("pictures", []).append(str(out / "curve.png"))
    return result


def figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Plot recipe of the obfuscation sweeps (configs/obfuscate-*.toml; their curve is the config's ``--plot``):
    ``grid.png``, ten inputs obfuscated at the ratio nearest 5 with the random-subspace control, from that
    point's first-seed run executed again (the database holds metrics, not inputs)."""
    import math

    from modelrecon.sweep import field_value, run_attack

    done = [r for r in rows if r["status"] == "complete"]
    if not done:
        raise ObfuscationError("no complete run to draw")
    shown = min(done, key=lambda r: (abs(math.log(field_value(r, "noise") / 5)), str(field_value(r, "seed"))))
    result, target = run_attack(shown["config"])
    shape = tuple(target.input_shape[-2:]) if len(target.input_shape) >= 2 else None
    return [obfuscate_plots.grid(picture_rows(result, target), out / "grid.png", image_shape=shape,
                                 title=f"{target.spec}: {result.message.split(';')[0]}")]
