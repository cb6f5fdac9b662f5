"""3-D vector and matrix arithmetic written out element by element, so that its results are the same
bits on every CPU.

NumPy hands `@`, `np.dot`, `np.linalg.norm` of a vector and `np.linalg.inv` to BLAS and LAPACK, and
OpenBLAS picks its kernels by the CPU it finds (Haswell, SkylakeX, Zen, ...): the kernels sum in
different orders and some fuse multiply and add, so the last bit of a product can differ between two
machines of one type. The synthetic-data generator must write the same bytes everywhere (its files
are fingerprinted and every run id hashes that fingerprint), so its geometry uses these functions,
which only multiply and add in a fixed order. `OPENBLAS_CORETYPE=Prescott` on any x86 machine shows
the difference (tests/test_synth_determinism.py).
"""
from __future__ import annotations

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for two 3x3 matrices."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty((3, 3), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            out[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]
    return out


def matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector for a 3x3 matrix and a 3-vector."""
    m, v = np.asarray(matrix, dtype=np.float64), np.asarray(vector, dtype=np.float64)
    return np.array([m[i, 0] * v[0] + m[i, 1] * v[1] + m[i, 2] * v[2] for i in range(3)])


def transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points @ matrix.T: every row of an (N, 3) array multiplied by a 3x3 matrix."""
    m, p = np.asarray(matrix, dtype=np.float64), np.asarray(points, dtype=np.float64)
    out = np.empty(p.shape, dtype=np.float64)
    for i in range(3):
        out[:, i] = m[i, 0] * p[:, 0] + m[i, 1] * p[:, 1] + m[i, 2] * p[:, 2]
    return out


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Dot product over the last axis (length 3); broadcasts rows against rows or against one vector."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]
    return float(out) if np.ndim(out) == 0 else out


def norm(v: np.ndarray) -> np.ndarray | float:
    """Euclidean length over the last axis (length 3)."""
    return np.sqrt(dot(v, v))


def normalised(v: np.ndarray) -> np.ndarray:
    """v divided by its length over the last axis (rows of an (N, 3) array each to unit length)."""
    v = np.asarray(v, dtype=np.float64)
    length = norm(v)
    return v / (length if np.ndim(length) == 0 else np.asarray(length)[..., None])


def inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 3x3 matrix by its adjugate (ValueError when singular)."""
    m = np.asarray(matrix, dtype=np.float64)
    cofactors = np.empty((3, 3), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            r0, r1 = [r for r in range(3) if r != i]
            c0, c1 = [c for c in range(3) if c != j]
            minor = m[r0, c0] * m[r1, c1] - m[r0, c1] * m[r1, c0]
            cofactors[i, j] = minor if (i + j) % 2 == 0 else -minor
    determinant = m[0, 0] * cofactors[0, 0] + m[0, 1] * cofactors[0, 1] + m[0, 2] * cofactors[0, 2]
    if determinant == 0.0 or not np.isfinite(determinant):
        raise ValueError("singular 3x3 matrix")
    return cofactors.T / determinant
