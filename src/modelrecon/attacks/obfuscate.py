"""Input obfuscation with a (recovered) first-layer row span.

Jayaram, Woodruff, Zhang, "Span Recovery for Deep Neural Networks with Applications to
Input Obfuscation" (ICLR 2020, arXiv 2002.08202), the application: a network of the form
M(x) = f(Ax + b) reads its input only through Ax, so with B an orthonormal basis of
rowspan(A) anything added in the orthogonal complement of span(B) is invisible:
A(x + z) = Ax whenever Bz = 0.  An input can be buried in large random noise and still be
classified exactly as before -- a person sees noise, the model sees the digit.

Steps (``Obfuscation.run(oracle)``), given a basis B (r x n, orthonormal rows; from the
span-recovery attack or a file) and the inputs to hide:

1. check the basis against the oracle's public input dimension (right width, fewer
   rows than n, full row rank; rows are re-orthonormalised if they are not already);
2. for every input x draw g ~ N(0, I), keep its part in the complement of span(B)
   (z = g - B^T B g) and, by default, also remove its component along x's own
   complement part, so that z is orthogonal to x as well; scale z to the chosen
   noise-to-signal ratio ||z|| / ||x||; x' = x + z.  With z orthogonal to x the cosine
   between x' and x is exactly 1 / sqrt(1 + ratio^2) (0.196 at ratio 5);
3. optionally keep x' in the valid input box: ``clip="clip"`` clips coordinatewise
   (cheap, breaks the invariance: the clipped part is no longer in the complement);
   ``clip="project"`` takes the valid input nearest to x + z on the affine set
   {x' : B x' = B x} (a small QP solved exactly through its dual; x is feasible, so it
   always has a solution): in the box and still invisible to the network, at the price
   of a smaller noise-to-signal ratio;
4. the reverse direction (``target_class=C``): pick as exemplar the attacker's input that
   the oracle gives class C with the highest confidence, then build noise-looking inputs
   x' = B^T B e + z, z random in the complement (and orthogonal to e), scaled to the
   ratio: the network sees exactly what it sees for the exemplar;
5. the span itself may be recovered here (:func:`recover_span`): the span-recovery attack
   run with its query points where the obfuscated inputs will live (the attacker's own
   inputs plus noise of the chosen ratio) rather than inside the input box;
6. check with the oracle (ledger phase "verify"): top-1 label (and confidence, when
   probabilities are offered) on x and x', and, when values are offered, the largest
   change of any output.  The attack never sees the model; the evaluator
   (:mod:`modelrecon.evaluate.obfuscate`) measures against the true network and
   repeats the study with the true span and with a random subspace as a control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelrecon.attacks import Attack
from modelrecon.oracle import Oracle, OracleError
from modelrecon.result import Result

EPS = np.finfo(np.float64).eps
CLIP_MODES = ("none", "clip", "project")


class ObfuscationError(ValueError):
    """A basis or inputs that cannot be used as asked."""


# -- the basis ---------------------------------------------------------------------------
def load_array(path: str | Path, key: str, what: str) -> np.ndarray:
    """A float64 array from ``.npz`` (under ``key``) or ``.npy``; a clear error otherwise."""
    path = Path(path)
    if not path.exists():
        raise ObfuscationError(f"no {what} file at {path}")
    if path.suffix not in (".npz", ".npy"):
        raise ObfuscationError(f"{what} file {path} must be .npz (key {key!r}) or .npy")
    try:
        if path.suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
        with np.load(path, allow_pickle=False) as f:
            if key not in f.files:
                raise ObfuscationError(f"{path} has no array {key!r} (it holds: {', '.join(f.files) or 'nothing'})")
            return np.asarray(f[key], dtype=np.float64)
    except ObfuscationError:
        raise
    except Exception as e:  # not a NumPy file, truncated, pickled objects, not numbers
        raise ObfuscationError(f"{what} file {path} cannot be read as a NumPy {path.suffix} array of numbers: "
                               f"{type(e).__name__}: {e}") from None


def load_basis(path: str | Path) -> np.ndarray:
    """A basis from ``.npz`` (key ``basis``) or ``.npy``."""
    return load_array(path, "basis", "span")


def check_basis(basis: Any, n: int) -> tuple[np.ndarray, dict[str, Any]]:
    """An (r x n) basis with orthonormal rows, 0 < r < n; a clear error otherwise.

    Rows that are independent but not orthonormal (beyond float64 rounding) are
    re-orthonormalised; the returned info says so."""
    B = np.asarray(basis, dtype=np.float64)
    if B.ndim == 1:
        B = B[None]
    if B.ndim != 2:
        raise ObfuscationError(f"a span basis must be a 2-D (r x n) array of row vectors, got shape {B.shape}")
    r, width = B.shape
    if width != n:
        raise ObfuscationError(f"span basis of shape {B.shape} has vectors of dimension {width}, but the target's "
                               f"inputs have dimension {n}: the basis must be (r x {n})")
    if r == 0:
        raise ObfuscationError("the span basis is empty (r = 0): nothing to keep, obfuscation would be plain noise")
    if r >= n:
        raise ObfuscationError(f"the span basis has {r} rows for inputs of dimension {n}: its complement is empty, "
                               "there is no room for invisible noise (need r < n)")
    if not np.isfinite(B).all():
        raise ObfuscationError("the span basis contains NaN or Inf")
    info: dict[str, Any] = {"dim": r, "reorthonormalised": False}
    gram_error = float(np.abs(B @ B.T - np.eye(r)).max())
    info["orthonormality_error"] = gram_error
    if gram_error > 8 * n * EPS:
        U, s, Vt = np.linalg.svd(B, full_matrices=False)
        tol = s.max() * max(B.shape) * EPS
        if s.min() <= tol:
            raise ObfuscationError(f"the span basis rows are linearly dependent (rank {int((s > tol).sum())} < {r} "
                                   "rows): give a basis of independent rows")
        B = Vt  # same row space, orthonormal rows
        info["reorthonormalised"] = True
    return B, info


def random_basis(r: int, n: int, seed: int = 0) -> np.ndarray:
    """A uniformly random r-dimensional subspace of R^n (orthonormal rows): the control."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, r)))
    return Q.T.copy()


# -- the noise -----------------------------------------------------------------------------
def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def complement_noise(X: np.ndarray, B: np.ndarray, ratio: float, rng: np.random.Generator,
                     orthogonal_to_input: bool = True) -> np.ndarray:
    """For each row x of X (flattened), z in the complement of span(B) with ||z|| = ratio ||x||.

    With ``orthogonal_to_input`` z is also orthogonal to x (it has no component along x's
    complement part), so cos(x + z, x) = 1 / sqrt(1 + ratio^2) exactly."""
    F = _flat(X)
    norms = np.linalg.norm(F, axis=1)
    if np.any(norms == 0) and ratio > 0:
        raise ObfuscationError(f"inputs {np.flatnonzero(norms == 0)[:10].tolist()} are all zero: a noise-to-signal "
                               "ratio is undefined for them")
    n = F.shape[1]
    U = F - (F @ B.T) @ B  # complement parts of the inputs
    u2 = np.einsum("ij,ij->i", U, U)
    has_u = orthogonal_to_input & (u2 > n * EPS * norms ** 2)  # x has a complement part above rounding level

    def draw(rows: np.ndarray) -> np.ndarray:
        G = rng.normal(size=(len(rows), n))
        Z = G - (G @ B.T) @ B
        coef = np.where(has_u[rows], np.einsum("ij,ij->i", Z, U[rows]) / np.where(has_u[rows], u2[rows], 1.0), 0.0)
        return Z - coef[:, None] * U[rows]

    Z = draw(np.arange(len(F)))
    for _ in range(8):  # a draw (almost) inside span(B) + x has nothing left: draw again
        bad = np.flatnonzero(np.linalg.norm(Z, axis=1) <= n * EPS * np.sqrt(n))
        if len(bad) == 0:
            break
        Z[bad] = draw(bad)
    zn = np.linalg.norm(Z, axis=1)
    if ratio > 0 and np.any(zn == 0):
        raise ObfuscationError("no room for noise: the complement of span(B) (and of the input) is empty")
    Z = Z * (ratio * norms / np.where(zn > 0, zn, 1.0))[:, None]
    return Z.reshape(X.shape)


def project_to_box(X: np.ndarray, Xp: np.ndarray, B: np.ndarray, box: tuple[float, float],
                   max_iter: int = 500) -> tuple[np.ndarray, dict[str, Any]]:
    """Per input, the valid input nearest to x + z that the network still cannot tell from x:
    argmin ||x' - y||  s.t.  lo <= x' <= hi,  B x' = B x   (y = x + z).

    Solved through its dual: x'(lam) = clip(y + B^T lam) and B x'(lam) = B x is a piecewise
    linear monotone equation in lam (r unknowns), solved by a semismooth Newton method with
    backtracking on the concave dual; it ends when the active set is right, up to rounding.
    x itself is feasible, so a solution always exists.  Returns the projected inputs and
    ``invariance_residual`` = max ||B(x' - x)|| (float64 rounding level when it converged)."""
    lo, hi = box
    F, Y = _flat(X), _flat(Xp)
    n = F.shape[1]
    out = np.empty_like(Y)
    iters, worst, converged = 0, 0.0, True

    def dual(lam: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        u = y + B.T @ lam
        xp = np.clip(u, lo, hi)
        res = B @ (xp - x)
        return 0.5 * float((xp - y) @ (xp - y)) - float(lam @ res), res, xp, u

    for i in range(len(F)):
        x, y = F[i], Y[i]
        tol = 8 * n * EPS * max(np.linalg.norm(x), np.linalg.norm(y), abs(lo), abs(hi), 1.0)
        lam = np.zeros(B.shape[0])
        q, res, xp, u = dual(lam, x, y)
        it = 0
        for it in range(1, max_iter + 1):
            if np.linalg.norm(res) <= tol:
                break
            free = (u > lo) & (u < hi)
            J = B[:, free] @ B[:, free].T
            # Levenberg-Marquardt damping: J is singular while too few coordinates are free
            step = -np.linalg.solve(J + 1e-3 * np.linalg.norm(res) * np.eye(len(J)), res)
            t = 1.0
            while True:  # ascent on the concave dual q; its gradient is -res
                q_new, res_new, xp_new, u_new = dual(lam + t * step, x, y)
                if q_new >= q - 1e-4 * t * float(res @ step) or t < 1e-12:
                    break
                t /= 2
            lam, q, res, xp, u = lam + t * step, q_new, res_new, xp_new, u_new
        converged &= bool(np.linalg.norm(res) <= tol)
        # finish exactly: back onto the affine set, then along the segment from x (feasible)
        # as far as the box allows; when the dual converged this moves by rounding only
        d = xp - x
        d = d - B.T @ (B @ d)
        with np.errstate(divide="ignore", invalid="ignore"):
            # overshoot by rounding noise (|d_i| <= tol at a coordinate sitting on a bound) is clipped
            room = np.where(d > tol, (hi - x) / d, np.where(d < -tol, (lo - x) / d, np.inf))
        s = float(min(1.0, room.min()))
        out[i] = np.clip(x + max(s, 0.0) * d, lo, hi)
        iters = max(iters, it)
        worst = max(worst, float(np.linalg.norm(B @ (out[i] - x))))
    return out.reshape(Xp.shape), {"iterations": iters, "invariance_residual": worst, "dual_converged": converged}


def obfuscate(X: np.ndarray, B: np.ndarray, ratio: float, seed: int = 0, clip: str = "none",
              box: tuple[float, float] | None = None, orthogonal_to_input: bool = True
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """x' = x + z for every input (see the module docstring); returns (X', info)."""
    if clip not in CLIP_MODES:
        raise ObfuscationError(f"clip must be one of {', '.join(CLIP_MODES)}, got {clip!r}")
    if ratio < 0 or not np.isfinite(ratio):
        raise ObfuscationError(f"the noise-to-signal ratio must be a finite number >= 0, got {ratio}")
    if clip != "none" and box is None:
        raise ObfuscationError("clipping needs an input box; this target publishes none")
    rng = np.random.default_rng(seed)
    Z = complement_noise(X, B, ratio, rng, orthogonal_to_input)
    Xp = X + Z
    info: dict[str, Any] = {"clip": clip}
    if clip == "clip":
        Xp = np.clip(Xp, *box)
    elif clip == "project":
        Xp, more = project_to_box(X, Xp, B, box)
        info.update(more)
    info.update(summary(X, Xp))
    return Xp, info


def noise_as_class(exemplar: np.ndarray, B: np.ndarray, ratio: float, count: int, seed: int = 0) -> np.ndarray:
    """``count`` noise-looking inputs whose span part is the exemplar's: B^T B e + z, z in the
    complement of span(B), orthogonal to e, with ||z|| = ratio ||e||."""
    e = np.asarray(exemplar, dtype=np.float64)
    E = np.repeat(e[None], count, axis=0)
    P = (_flat(E) @ B.T) @ B
    Z = _flat(complement_noise(E, B, ratio, np.random.default_rng(seed), orthogonal_to_input=True))
    return (P + Z).reshape(E.shape)


def summary(X: np.ndarray, Xp: np.ndarray) -> dict[str, float]:
    """Noise-to-signal ratio ||x' - x|| / ||x|| and cosine(x', x), averaged (and worst)."""
    F, Fp = _flat(X), _flat(Xp)
    nx, nxp = np.linalg.norm(F, axis=1), np.linalg.norm(Fp, axis=1)
    ratio = np.linalg.norm(Fp - F, axis=1) / nx
    cos = np.einsum("ij,ij->i", F, Fp) / (nx * np.where(nxp > 0, nxp, 1.0))
    return {"noise_to_signal": float(ratio.mean()), "noise_to_signal_min": float(ratio.min()),
            "cosine_to_original": float(cos.mean()), "cosine_to_original_max": float(cos.max())}


# -- the attack ------------------------------------------------------------------------------
class Obfuscation(Attack):
    """Hide inputs in noise the network cannot see, given a basis of its first layer's row span."""

    name = "obfuscate"

    def __init__(self, basis: Any = None, inputs: Any = None, noise: float = 5.0, clip: str = "none",
                 target_class: int | None = None, count: int | None = None, orthogonal_to_input: bool = True,
                 check: bool = True, seed: int = 0, span_source: str = "given",
                 recover: dict[str, Any] | None = None):
        if clip not in CLIP_MODES:
            raise ObfuscationError(f"clip must be one of {', '.join(CLIP_MODES)}, got {clip!r}")
        if not np.isfinite(noise) or noise < 0:
            raise ObfuscationError(f"noise (the noise-to-signal ratio) must be >= 0, got {noise}")
        if (basis is None) == (recover is None):
            raise ObfuscationError("give either a basis or recover=dict(setting=..., output=..., points=...), "
                                   "not both")
        self._basis = None if basis is None else np.asarray(basis, dtype=np.float64)
        # recover the span first on the same oracle (recover_span options; centres default to the inputs)
        recover = dict(recover) if recover is not None else None
        self._centres = None if recover is None else recover.pop("centres", None)
        self.recover = recover
        if self._centres is not None and self.recover is not None:
            self.recover["centres_shape"] = list(np.shape(self._centres))
        if inputs is None:
            raise ObfuscationError("inputs to obfuscate are required: a batch (N, ...) of the target's inputs")
        self._inputs = np.asarray(inputs, dtype=np.float64)
        if self._inputs.ndim < 2 or len(self._inputs) == 0:
            raise ObfuscationError(f"inputs must be a non-empty batch (N, ...), got shape {self._inputs.shape}")
        self.noise = float(noise)
        self.clip = clip
        self.target_class = target_class
        self.count = count
        self.orthogonal_to_input = orthogonal_to_input
        self.check = check
        self.seed = seed
        self.span_source = span_source
        self.basis_shape = list(self._basis.shape) if self._basis is not None else None
        self.inputs_shape = list(self._inputs.shape)

    def _check_inputs(self, oracle: Oracle) -> None:
        if tuple(self._inputs.shape[1:]) != oracle.input_shape:
            raise ObfuscationError(f"inputs of shape {self._inputs.shape[1:]} (each) do not fit this target, which "
                                   f"takes inputs of shape {oracle.input_shape}")
        if not np.isfinite(self._inputs).all():
            raise ObfuscationError("inputs contain NaN or Inf")
        if self.target_class is not None and not (0 <= int(self.target_class) < max(oracle.n_outputs, 2)):
            raise ObfuscationError(f"target class {self.target_class} is not a class of this target "
                                   f"(it has {max(oracle.n_outputs, 2)})")

    def _ask(self, oracle: Oracle, X: np.ndarray) -> dict[str, np.ndarray]:
        """Top-1 label (and its probability and the raw values, when offered)."""
        kinds = []  # the fewest kinds that give label, confidence and output change
        if "probabilities" in oracle.kinds and oracle.task == "multiclass":
            kinds.append("probabilities")
        elif "label" in oracle.kinds:
            kinds.append("label")
        if "value" in oracle.kinds:
            kinds.append("value")
        if not kinds:
            raise OracleError(f"checking obfuscated inputs needs label, probability or value queries; "
                              f"the oracle offers {', '.join(oracle.kinds)}")
        got = oracle.query(X, kinds)
        out: dict[str, np.ndarray] = {}
        if "probabilities" in got:
            p = np.asarray(got["probabilities"], dtype=np.float64)
            if p.ndim == 1:  # binary: probability of class 1
                p = np.stack([1 - p, p], axis=1)
            out["label"] = p.argmax(1)
            out["confidence"] = p.max(1)
        if "value" in got:
            v = np.asarray(got["value"], dtype=np.float64)
            out["value"] = v.reshape(len(X), -1)
            if "label" not in out:
                out["label"] = out["value"].argmax(1) if out["value"].shape[1] > 1 else (out["value"][:, 0] > 0).astype(int)
            if "confidence" not in out and out["value"].shape[1] > 1 and oracle.task == "multiclass":
                e = np.exp(out["value"] - out["value"].max(1, keepdims=True))  # softmax of the returned logits
                out["confidence"] = e.max(1) / e.sum(1)
        if "label" in got:
            out["label"] = np.asarray(got["label"]).astype(int)
        return out

    def execute(self, oracle: Oracle) -> Result:
        self._check_inputs(oracle)
        span_summary = None
        basis = self._basis
        if self.recover is not None:
            opts = {"ratio": self.noise, "seed": self.seed, **self.recover}
            opts.pop("centres_shape", None)
            opts["centres"] = self._inputs if self._centres is None else self._centres
            span = recover_span(oracle, **opts)
            basis = span.params["basis"]
            span_summary = {"status": span.status, "message": span.message, "dim": int(len(basis)),
                            "queries": span.queries.get("total", 0),
                            "wall_time_s": span.wall_time_s, "details": {k: v for k, v in span.details.items()
                                                                         if k != "hyperparameters"}}
            if len(basis) == 0 or span.status == "failed":
                return Result(self.name, "failed", f"span recovery gave no usable span: {span.message}",
                              details={"span_recovery": span_summary})
        B, basis_info = check_basis(basis, oracle.input_dim)
        X = self._inputs
        details: dict[str, Any] = {"basis": basis_info, "span_source": self.span_source if span_summary is None
                                   else "recovered", "mode": "class" if self.target_class is not None else "hide"}
        if span_summary is not None:
            details["span_recovery"] = span_summary
        params: dict[str, Any] = {"basis": B}
        if self.target_class is None:
            Xp, info = obfuscate(X, B, self.noise, self.seed, self.clip, oracle.input_box, self.orthogonal_to_input)
            details["obfuscation"] = info
            params.update(inputs=X, obfuscated=Xp)
            message = (f"{len(X)} inputs hidden in noise {info['noise_to_signal']:.3g}x their norm "
                       f"(cosine to original {info['cosine_to_original']:.3g}, clip={self.clip})")
            if self.check:
                with oracle.ledger.phase("verify"):
                    before, after = self._ask(oracle, X), self._ask(oracle, Xp)
                params.update(labels=before["label"], labels_obfuscated=after["label"])
                rate = float(np.mean(before["label"] == after["label"]))
                check: dict[str, Any] = {"label_preserved_rate": rate}
                if "confidence" in before:
                    params.update(confidence=before["confidence"], confidence_obfuscated=after["confidence"])
                if "value" in before:
                    check["max_abs_value_difference"] = float(np.abs(after["value"] - before["value"]).max())
                    check["max_abs_value"] = float(np.abs(before["value"]).max())
                details["oracle_check"] = check
                message += f"; the oracle keeps the label of {rate:.1%}"
                if "max_abs_value_difference" in check:
                    message += f", outputs move by at most {check['max_abs_value_difference']:.3g}"
        else:
            c = int(self.target_class)
            with oracle.ledger.phase("attack"):
                seen = self._ask(oracle, X)
            hits = np.flatnonzero(seen["label"] == c)
            if len(hits) == 0:
                return Result(self.name, "failed", f"none of the {len(X)} candidate inputs is given class {c} by the "
                              "oracle: no exemplar to copy the span part from", params=params, details=details)
            best = hits[np.argmax(seen["confidence"][hits])] if "confidence" in seen else hits[0]
            e = X[best]
            count = self.count or len(X)
            Xp = noise_as_class(e, B, self.noise, count, self.seed)
            if self.clip == "clip":
                Xp = np.clip(Xp, *oracle.input_box) if oracle.input_box else Xp
            elif self.clip == "project":
                if oracle.input_box is None:
                    raise ObfuscationError("clipping needs an input box; this target publishes none")
                E = np.repeat(e[None], count, axis=0)
                Xp, more = project_to_box(E, Xp, B, oracle.input_box)
                details["projection"] = more
            E = np.repeat(e[None], count, axis=0)
            info = summary(E, Xp)
            details["obfuscation"] = info
            details["exemplar_index"] = int(best)
            params.update(exemplar=e, obfuscated=Xp, inputs=E)
            message = (f"{count} noise-looking inputs built on the exemplar of class {c} (input {best}); noise "
                       f"{info['noise_to_signal']:.3g}x its norm, cosine to it {info['cosine_to_original']:.3g}")
            if self.check:
                with oracle.ledger.phase("verify"):
                    after = self._ask(oracle, Xp)
                rate = float(np.mean(after["label"] == c))
                params.update(labels_obfuscated=after["label"], labels=np.full(count, c))
                check = {"target_class_rate": rate}
                if "confidence" in after:
                    params["confidence_obfuscated"] = after["confidence"]
                    params["confidence"] = np.full(count, seen["confidence"][best])
                    check["mean_confidence"] = float(after["confidence"].mean())
                details["oracle_check"] = check
                message += f"; the oracle gives class {c} to {rate:.1%}"
        details["target_class"] = self.target_class
        status, message = _verdict(details, message, span_summary)
        return Result(self.name, status, message, params=params, details=details)


def _verdict(details: dict[str, Any], message: str, span_summary: dict[str, Any] | None) -> tuple[str, str]:
    """complete only when the oracle saw every obfuscated input as intended (every label kept, or
    every input given the target class); fewer means the span is short: the noise is seen."""
    check = details.get("oracle_check")
    if check is None:
        return "partial", message + "; not checked with the oracle (check=False)"
    rate = check.get("label_preserved_rate", check.get("target_class_rate"))
    if rate is None or not np.isfinite(rate) or rate < 1.0:
        dim = details["basis"]["dim"]
        why = (f"the {dim}-dimensional span is short of the first layer's: noise in its complement is seen "
               f"({1 - rate:.1%} of the inputs change class)" if rate is not None and np.isfinite(rate) else
               "the oracle check gave no rate")
        points = (span_summary or {}).get("details", {}).get("points")  # the span attack's count, or the region's
        if isinstance(points, dict) and points.get("kind") == "region":
            why += "; recovering the span with points='box' (--span-points box) may find the directions it missed"
        return "partial", f"{why}; {message}"
    return "complete", message


# -- the span, recovered where it matters ----------------------------------------------------
POINTS = ("region", "box")


def recover_span(oracle: Oracle, setting: str = "relu-value", output: int | None = None, points: str = "region",
                 centres: np.ndarray | None = None, ratio: float = 5.0, seed: int = 0, **span_options: Any) -> Result:
    """The span-recovery attack (:class:`modelrecon.attacks.span.SpanRecovery`) run for obfuscation.

    ``points="box"`` keeps the span attack's own query points (uniform inside the input
    box).  ``points="region"`` asks its queries where obfuscated inputs will live: at the
    attacker's own inputs ``centres`` plus isotropic noise of norm ``ratio`` x their norm.
    Only the query points change, not the algorithm.  Why it matters: a ReLU unit that is
    (almost) never active inside the box leaves no trace in box queries, yet noise of five
    times the image norm switches it on for about half the inputs, and then the "invisible"
    noise is seen (measured in docs/obfuscate.md)."""
    from modelrecon.attacks.span import SpanRecovery

    if points not in POINTS:
        raise ObfuscationError(f"points must be one of {', '.join(POINTS)}, got {points!r}")
    if points == "box":
        return SpanRecovery(setting=setting, output=output, seed=seed, **span_options).run(oracle)
    if centres is None or len(centres) == 0:
        raise ObfuscationError("points='region' needs the attacker's own inputs as centres")
    C = np.asarray(centres, dtype=np.float64).reshape(len(centres), -1)
    if C.shape[1] != oracle.input_dim:
        raise ObfuscationError(f"centres of dimension {C.shape[1]} do not fit inputs of dimension {oracle.input_dim}")
    if not np.isfinite(ratio) or ratio < 0:
        raise ObfuscationError(f"ratio must be >= 0, got {ratio}")

    class RegionSpanRecovery(SpanRecovery):
        def _points(self, m: int) -> np.ndarray:
            X = C[self._rng.integers(len(C), size=m)]
            G = self._rng.normal(size=X.shape)
            norms = np.linalg.norm(X, axis=1)
            scale = np.where(norms > 0, norms, 1.0) * ratio / np.linalg.norm(G, axis=1)
            return X + G * scale[:, None]

    result = RegionSpanRecovery(setting=setting, output=output, seed=seed, **span_options).run(oracle)
    result.details["points"] = {"kind": "region", "centres": len(C), "ratio": ratio}
    return result
