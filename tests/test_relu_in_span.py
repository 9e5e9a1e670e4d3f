"""``_across_unit``'s linear program (``relu._across_program``): in x, and in the first layer's row span."""
import numpy as np
from scipy.optimize import linprog

from modelrecon.attacks.relu import _across_program


def _program(seed: int, shift: float = 0.0, d: int = 60, width: int = 6):
    """A slab |W (x - shift)| <= 1 (its 2 x width walls, each kept by s) and one row's surface k x = -k0 in its span:
    the constraints read x only through W's rows.  The basis of their span, the constraints over [x, s] and the
    row."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((width, d))
    Z, z = np.vstack([W, -W]), 1 + np.concatenate([-W.sum(axis=1), W.sum(axis=1)]) * shift
    norms = np.linalg.norm(Z, axis=1)
    A_x = np.hstack([-Z / norms[:, None], np.ones((len(Z), 1))])
    k = rng.standard_normal(width) @ W
    k0 = float(0.1 * np.linalg.norm(k) / np.linalg.norm(W, axis=1).max() - k @ np.full(d, shift))
    B = np.linalg.qr(W.T)[0]
    return B, A_x, z / norms, k, k0


def _full(A_x, b, k, k0, lo, hi):
    d = len(k)
    res = linprog(np.append(np.zeros(d), -1.0), A_ub=A_x, b_ub=b, A_eq=np.append(k, 0.0)[None], b_eq=[-k0],
                  bounds=[(lo, hi)] * d + [(0, None)], method="highs")
    assert res.status == 0
    return res.x[:d], res.x[-1]


def _check(point, room, A_x, b, k, k0, lo, hi):
    scale = np.abs(A_x[:, :-1]).sum(axis=1).max() * np.abs(point).max() + np.abs(b).max()
    assert np.all(A_x @ np.append(point, room) <= b + 1e-7 * scale)  # within HiGHS's feasibility tolerance
    assert abs(k @ point + k0) <= 1e-7 * (np.abs(k) @ np.abs(point) + abs(k0))
    assert np.all(point >= lo) and np.all(point <= hi)


def test_across_program_in_span_finds_the_full_programs_room_where_the_frame_does_not_cut():
    for seed in range(3):
        B, A_x, b, k, k0 = _program(seed)
        A_y = np.hstack([A_x[:, :-1] @ B, A_x[:, -1:]])
        _, room_full = _full(A_x, b, k, k0, -3.0, 3.0)
        point, room = _across_program(A_y, b, B.T @ k, k0, -3.0, 3.0, B)
        _check(point, room, A_x, b, k, k0, -3.0, 3.0)
        assert room > 0 and abs(room - room_full) <= 1e-9 * room_full


def test_across_program_in_span_keeps_to_the_frame_with_less_room_where_it_cuts():
    """The slab centred far out: the point stays in the frame, every constraint met, s at most the program's in x;
    none where the slab misses the frame."""
    B, A_x, b, k, k0 = _program(0, 0.2)
    A_y = np.hstack([A_x[:, :-1] @ B, A_x[:, -1:]])
    _, room_full = _full(A_x, b, k, k0, -0.2, 0.2)
    point, room = _across_program(A_y, b, B.T @ k, k0, -0.2, 0.2, B)
    _check(point, room, A_x, b, k, k0, -0.2, 0.2)
    assert 0 < room < 0.5 * room_full  # 0.044 for 0.115
    B, A_x, b, k, k0 = _program(0, 2.0)  # no point of the slab in this frame
    assert _across_program(np.hstack([A_x[:, :-1] @ B, A_x[:, -1:]]), b, B.T @ k, k0, -0.5, 0.5, B) is None


def test_across_program_in_x_is_the_program_over_the_frame_bit_for_bit():
    """B None (B = I): the program in x over the frame itself, the same point and s as linprog's, to the bit."""
    for seed, (lo, hi) in zip(range(3), [(-3.0, 3.0), (-0.2, 0.2), (-1.0, 2.0)]):
        _, A_x, b, k, k0 = _program(seed, 0.2 * seed)
        point, room = _across_program(A_x, b, k, k0, lo, hi)
        full = _full(A_x, b, k, k0, lo, hi)
        _check(point, room, A_x, b, k, k0, lo, hi)
        assert point.tobytes() == full[0].tobytes() and room == full[1]
