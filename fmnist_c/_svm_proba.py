"""SVC's probabilities as libsvm makes them: a Platt sigmoid per class pair fitted by
Lin, Lin and Weng's Newton method (sigmoid_train in libsvm's svm.cpp), and the pairs'
probabilities coupled into one distribution by Wu, Lin and Weng's second method
(multiclass_probability), vectorised over samples."""
import numpy as np


def _logistic_loss(f, t):
    """sum of t f + log(1 + exp(-f)) written to stay finite either side of 0"""
    return float(np.sum(np.where(f >= 0, t * f + np.log1p(np.exp(-np.abs(f))),
                                 (t - 1) * f + np.log1p(np.exp(-np.abs(f))))))


def sigmoid_train(dec, positive):
    """(A, B) minimising the cross-entropy of P(positive | f) = 1 / (1 + exp(A f + B)) on
    decision values dec, with libsvm's regularised targets (prior + 1) / (prior + 2)."""
    dec = np.asarray(dec, np.float64)
    n1 = float(positive.sum())
    n0 = len(dec) - n1
    t = np.where(positive, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    A, B = 0.0, float(np.log((n0 + 1) / (n1 + 1)))
    fval = _logistic_loss(dec * A + B, t)
    for _ in range(100):
        f = dec * A + B
        e = np.exp(-np.abs(f))
        p = np.where(f >= 0, e / (1 + e), 1 / (1 + e))  # 1 - P(positive), as libsvm's p
        q = 1 - p
        d2 = p * q
        h11, h22, h21 = 1e-12 + np.sum(dec * dec * d2), 1e-12 + np.sum(d2), np.sum(dec * d2)
        d1 = t - p
        g1, g2 = np.sum(dec * d1), np.sum(d1)
        if abs(g1) < 1e-5 and abs(g2) < 1e-5:
            break
        det = h11 * h22 - h21 * h21
        dA, dB = -(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det
        gd, step = g1 * dA + g2 * dB, 1.0
        while step >= 1e-10:
            nA, nB = A + step * dA, B + step * dB
            nf = _logistic_loss(dec * nA + nB, t)
            if nf < fval + 1e-4 * step * gd:
                A, B, fval = nA, nB, nf
                break
            step /= 2
        else:
            break
    return A, B


def fit_sigmoids(dec, codes, k):
    """probA_, probB_: one sigmoid per pair (a, b), fitted on the rows of classes a and b
    with class a as the positive one. dec: (n, n_pairs); codes: (n) in [0, k)."""
    A, B = np.zeros(dec.shape[1]), np.zeros(dec.shape[1])
    p = 0
    for a in range(k):
        for b in range(a + 1, k):
            rows = (codes == a) | (codes == b)
            A[p], B[p] = sigmoid_train(dec[rows, p], codes[rows] == a)
            p += 1
    return A, B


def couple(dec, A, B, k):
    """(n, k) class probabilities from pairwise ones r_ab = sigmoid(dec_ab), clipped to
    [1e-7, 1 - 1e-7] as libsvm, by the fixed-point iteration of multiclass_probability,
    each sample stopping when its own error is below 0.005 / k."""
    n = dec.shape[0]
    f = dec * A + B
    e = np.exp(-np.abs(f))
    r_first = np.clip(np.where(f >= 0, e / (1 + e), 1 / (1 + e)), 1e-7, 1 - 1e-7)
    r = np.zeros((n, k, k))
    p = 0
    for a in range(k):
        for b in range(a + 1, k):
            r[:, a, b], r[:, b, a] = r_first[:, p], 1 - r_first[:, p]
            p += 1
    # Q[t][t] = sum_{j != t} r_jt^2, Q[t][j] = -r_jt r_tj
    Q = -r.transpose(0, 2, 1) * r
    idx = np.arange(k)
    Q[:, idx, idx] = np.sum(r.transpose(0, 2, 1) ** 2, axis=2) - r[:, idx, idx] ** 2
    prob = np.full((n, k), 1.0 / k)
    active = np.ones(n, bool)
    for _ in range(max(100, k)):
        Qp = np.einsum("ntj,nj->nt", Q, prob)
        pQp = np.einsum("nt,nt->n", prob, Qp)
        active &= np.abs(Qp - pQp[:, None]).max(axis=1) >= 0.005 / k
        if not active.any():
            break
        rows = np.flatnonzero(active)
        Qa, pa, Qpa, pQpa = Q[rows], prob[rows], Qp[rows], pQp[rows]
        for t in range(k):
            diff = (-Qpa[:, t] + pQpa) / Qa[:, t, t]
            pa[:, t] += diff
            pQpa = (pQpa + diff * (diff * Qa[:, t, t] + 2 * Qpa[:, t])) / (1 + diff) ** 2
            Qpa = (Qpa + diff[:, None] * Qa[:, t, :]) / (1 + diff[:, None])
            pa /= (1 + diff[:, None])
        prob[rows] = pa
    return prob
