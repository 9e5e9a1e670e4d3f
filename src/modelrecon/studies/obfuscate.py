"""Glue for ``modelrecon obfuscate`` and the obfuscation sweeps' plot recipe: inputs, the attack run,
the pictures and tables.  The attack part sees only the oracle and the basis; the control rows of the
pictures and the curves are evaluator-side (they run the true network)."""

from __future__ import annotations

import math
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
    k = min(k, len(Xp))  # fewer noise-looking inputs than k: as many exemplar pictures as there are
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


def _hp(row: dict[str, Any], name: str, default: Any = None) -> Any:
    """A hyperparameter of a sweep row's run (grid value or fixed in [attack])."""
    return row["config"]["hyperparameters"].get(name, default)


def _source(row: dict[str, Any]) -> str:
    """The row's span source: its ``span`` grid label, else how the span was obtained."""
    from modelrecon.sweep import field_value

    label = field_value(row, "span")
    return f"recovered span ({label})" if label is not None else "recovered span"


def _mean(rows: list[dict[str, Any]], metric: str) -> float | None:
    vals = [r["metrics"].get(metric) for r in rows]
    vals = [v for v in vals if isinstance(v, (int, float)) and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _groups(rows: list[dict[str, Any]], key) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _num(v: Any, fmt: str = ".3g") -> str:
    return "-" if v is None else format(v, fmt)


def tables(rows: list[dict[str, Any]]) -> str:
    """The obfuscation sweep as Markdown (means over seeds): per span source, ratio and box handling the
    span (dimension, angle, leak, span queries) and what the true network does with the obfuscated inputs
    (label preserved, output change, cosine; the true span and the random subspace beside); per chosen
    class, the reverse direction."""
    from modelrecon.sweep import field_value

    hide = [r for r in rows if r["status"] != "pending" and _hp(r, "target_class") is None]
    cls = [r for r in rows if r["status"] != "pending" and _hp(r, "target_class") is not None]
    out = []
    if hide:
        out += ["| net | span | ratio | box handling | status | dim / true | max angle (rad) | first-layer leak "
                "| span queries | label preserved | max \\|logit change\\| | cosine | ratio achieved | in box "
                "| true span: preserved | random subspace: preserved |", "|" + "---|" * 16]
        key = lambda r: (field_value(r, "net"), _source(r), float(_hp(r, "noise", 5.0)), _hp(r, "clip", "none"))  # noqa: E731
        for (net, source, noise, clip), rs in _groups(hide, key).items():
            span = rs[0]["details"].get("span_recovery", {})
            status = "/".join(sorted({r["status"] for r in rs}))
            if status == "failed":
                status += f": {rs[0]['message'][:90]}"
            dim, true = _mean(rs, "recovered_dim"), _mean(rs, "true_dim")
            out.append(f"| {net or '-'} | {source} | {noise:g} | {clip} | {status} | "
                       f"{_num(dim, '.0f') if dim is not None else span.get('dim', '-')} / {_num(true, '.0f')} | "
                       f"{_num(_mean(rs, 'max_principal_angle_rad'), '.1e')} | {_num(_mean(rs, 'first_layer_leak'))} | "
                       f"{span.get('queries', '-')} | {_num(_mean(rs, 'label_preserved_rate'))} | "
                       f"{_num(_mean(rs, 'max_abs_logit_difference'), '.2g')} | {_num(_mean(rs, 'cosine_to_original'))} | "
                       f"{_num(_mean(rs, 'noise_to_signal'))} | {_num(_mean(rs, 'inside_input_box'))} | {_num(_mean(rs, 'true_span_label_preserved_rate'))} | "
                       f"{_num(_mean(rs, 'random_subspace_label_preserved_rate'))} |")
    if cls:
        out += ["" if out else None, "| net | class | status | classified as the class | mean confidence | cosine to exemplar "
                "| random subspace: classified as the class | exemplar search queries |", "|" + "---|" * 8]
        key = lambda r: (field_value(r, "net"), int(_hp(r, "target_class")))  # noqa: E731
        for (net, c), rs in _groups(cls, key).items():
            search = [r["queries"] - r["details"].get("span_recovery", {}).get("queries", 0) for r in rs
                      if r["queries"] is not None]
            out.append(f"| {net or '-'} | {c} | {'/'.join(sorted({r['status'] for r in rs}))} | "
                       f"{_num(_mean(rs, 'target_class_rate'))} | {_num(_mean(rs, 'mean_confidence_target_class'))} | "
                       f"{_num(_mean(rs, 'cosine_to_original'))} | {_num(_mean(rs, 'random_subspace_target_class_rate'))} | "
                       f"{int(np.mean(search)) if search else '-'} |")
    return "\n".join(line for line in out if line is not None) + "\n"


def figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Plot recipe of the obfuscation sweeps (configs/obfuscate-*.toml), per value of the grid key ``net``
    (file names suffixed -NET when the study has one):

    * ``grid.png`` (runs without box handling): ten inputs obfuscated at the ratio nearest 5 with the
      random-subspace control, from the first span source's first-seed run executed again (the database
      holds metrics, not inputs);
    * ``curve.png`` (several span sources, three ratios or more; with one source the config's ``--plot``
      draws it): label preserved against the ratio, a line per span source, the true span and the random
      subspace (evaluator side, first source's runs), chance dotted;
    * ``class.png`` (target_class runs): noise-looking inputs built to be read as 3 (or the first class run);
    * ``STUDY.md``: :func:`tables`."""
    from modelrecon.sweep import field_value, run_attack

    done = [r for r in rows if r["status"] in ("complete", "partial")]
    if not done:
        raise ObfuscationError("no finished run to draw")
    paths = []
    for net in dict.fromkeys(field_value(r, "net") for r in done):
        mine = [r for r in done if field_value(r, "net") == net]
        suffix = f"-{net}" if net is not None else ""
        hide = [r for r in mine if _hp(r, "target_class") is None]
        cls = [r for r in mine if _hp(r, "target_class") is not None]
        if hide and all(_hp(r, "clip", "none") == "none" for r in hide):  # box handling: its table only
            first = [r for r in hide if _source(r) == _source(hide[0])]
            shown = min(first, key=lambda r: (abs(math.log(max(float(_hp(r, "noise", 5.0)), 1e-3) / 5)),
                                              str(field_value(r, "seed"))))
            result, target = run_attack(shown["config"])
            shape = tuple(target.input_shape[-2:]) if len(target.input_shape) >= 2 else None
            paths.append(obfuscate_plots.grid(picture_rows(result, target), out / f"grid{suffix}.png", image_shape=shape,
                                              title=f"{target.spec}: {result.message.split(';')[0]}"))
            if len({_source(r) for r in hide}) > 1 and len({_hp(r, "noise") for r in first}) >= 3:
                points = []
                for source, rs in _groups(hide, _source).items():
                    for noise, at in _groups(rs, lambda r: float(_hp(r, "noise", 5.0))).items():
                        points.append({"span": source, "ratio": noise,
                                       "label_preserved_rate": _mean(at, "label_preserved_rate")})
                for name, prefix in (("true span", "true_span_"), ("random subspace", "random_subspace_")):
                    for noise, at in _groups(first, lambda r: float(_hp(r, "noise", 5.0))).items():
                        points.append({"span": name, "ratio": noise,
                                       "label_preserved_rate": _mean(at, f"{prefix}label_preserved_rate")})
                paths.append(obfuscate_plots.curve([p for p in points if p["label_preserved_rate"] is not None],
                                                   out / f"curve{suffix}.png", chance=1.0 / max(target.n_outputs, 2),
                                                   title=f"{target.spec} ({shown['study']})"))
        if cls:
            shown = next((r for r in cls if int(_hp(r, "target_class")) == 3), cls[0])
            result, target = run_attack(shown["config"])
            shape = tuple(target.input_shape[-2:]) if len(target.input_shape) >= 2 else None
            paths.append(obfuscate_plots.grid(
                picture_rows(result, target), out / f"class{suffix}.png", image_shape=shape,
                title=f"{target.spec}: noise-looking inputs built to be read as {int(_hp(shown, 'target_class'))}"))
    md = out / f"{rows[0]['study']}.md"
    md.write_text(tables(rows))
    return paths + [md]
