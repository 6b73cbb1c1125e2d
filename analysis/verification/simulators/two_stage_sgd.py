"""Two-stage training on a shifted quadratic task: the process the two-stage bound assumes.

Loss f(w; xi) = (w - xi)' A (w - xi) / 2 with A = diag(a) >= 0 (spec §9.5). The server's
general data xi ~ P_0 has mean mu_0; device k's task data xi ~ P_k has mean mu_k, and the
task loss is F = sum_k alpha_k F_k. Every sample has the same per-coordinate law around its
mean: N(0, s^2) (``gaussian``) or U(-h, h) (``uniform``, bounded data). Every constant of the
bound is then exact:

* grad f(w; xi) = A (w - xi), so F and G are L-smooth with L = max(a);
* the per-sample gradient noise A (mu - xi) does not depend on w: sigma^2 = c tr(A^2) with
  c = s^2 (gaussian) or h^2/3 (uniform), under every P_k;
* grad G - grad F = A (mu_T - mu_0), mu_T = sum_k alpha_k mu_k, at every w: delta =
  ||A (mu_0 - mu_T)|| (the gap A4 needs, exact, not only a bound);
* F(w) - F* = (w - mu_T)' A (w - mu_T)/2, so Phi = F(w_0) - F* exactly;
* ``uniform`` only: with eta L <= 1 each step is a coordinate-wise convex combination of w
  and a batch mean, so every iterate stays in the box B spanned by w_0 and the supports of
  P_0..P_K; on B, ||grad f(w; xi)|| <= G = ||a * width(B)|| (A5 on the reachable set).
  Gaussian data have no such G: ``linear_shift`` is checked on uniform data only.

(Gaussian *features*, loss (x'w - y)^2 with x ~ N(0, I), would break A3: the gradient
variance there grows like 4 (d + 1) ||w - w*||^2, so no finite sigma^2 exists.)

Algorithm (spec §4.1): M pre-training steps w <- w - eta A (w - mean of D(m) samples of P_0),
then N FedSGD steps in which device k averages the gradients of B_k(n) samples of P_k and the
server steps along sum_k alpha_k g_k. For Gaussian data the mean of B samples is drawn from
its exact law mu + (s/sqrt(B)) z (equal in distribution, and cheap for large batches);
uniform data are drawn sample by sample. Pre-training and fine-tuning use separate random
streams, so runs that share N share their fine-tuning noise (common random numbers).

:func:`expected_norms` gives E||grad F(w_t)||^2 in closed form (mean and variance per
coordinate follow a linear recursion), for cross-checks and tightness without Monte Carlo
noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISES = ("gaussian", "uniform")

PROFILE = (1.0, 0.8, 0.5, 0.3, 0.1)
"""Curvatures a / L of the spec's reference task (d = 5)."""


@dataclass(frozen=True, eq=False)
class ShiftedQuadratic:
    """The task: ``curvature`` a (d,) [F]/[w]^2; ``weights`` alpha_k (K,), summing to 1;
    ``device_means`` mu_k (K, d) and ``general_mean`` mu_0 (d,) [w]; ``start`` w_0 (d,);
    ``noise`` in :data:`NOISES` with ``scale`` s (standard deviation) or h (half-width) [w]."""

    curvature: np.ndarray
    weights: np.ndarray
    device_means: np.ndarray
    general_mean: np.ndarray
    start: np.ndarray
    noise: str
    scale: float

    def __post_init__(self) -> None:
        if self.noise not in NOISES:
            raise ValueError(f"noise = {self.noise!r}: must be one of {NOISES}")
        if np.any(self.curvature < 0) or abs(float(np.sum(self.weights)) - 1.0) > 1e-12:
            raise ValueError("curvatures must be >= 0 and weights must sum to 1")

    @classmethod
    def from_constants(
        cls,
        smoothness: float,
        grad_variance: float,
        shift: float,
        initial_gap: float,
        weights,
        *,
        noise: str = "gaussian",
        profile=PROFILE,
        heterogeneity: float = 1.0,
        seed: int = 0,
    ) -> ShiftedQuadratic:
        """A task whose L, sigma^2, delta and Phi are the given values: a = L * ``profile``
        (max 1), device means N(0, heterogeneity^2 I), mu_0 and w_0 offset from mu_T along
        random directions (``seed``) by the lengths that give ``shift`` and ``initial_gap``."""
        rng = np.random.default_rng(seed)
        a = smoothness * np.asarray(profile, dtype=float) / max(profile)
        weights = np.asarray(weights, dtype=float)
        variance = grad_variance / float(np.sum(a**2))  # per coordinate
        scale = float(np.sqrt(variance if noise == "gaussian" else 3.0 * variance))
        means = rng.normal(size=(len(weights), len(a))) * heterogeneity
        task_mean = weights @ means
        direction = rng.normal(size=len(a))
        general = task_mean + shift * direction / np.linalg.norm(a * direction)
        start = rng.normal(size=len(a))
        start = task_mean + np.sqrt(2.0 * initial_gap / float(start @ (a * start))) * start
        return cls(a, weights, means, general, start, noise, scale)

    # ---- constants, computed from the task itself -------------------------------------
    @property
    def dim(self) -> int:
        return len(self.curvature)

    @property
    def devices(self) -> int:
        return len(self.weights)

    @property
    def task_mean(self) -> np.ndarray:
        """mu_T = sum_k alpha_k mu_k, the minimiser of F."""
        return self.weights @ self.device_means

    @property
    def coordinate_variance(self) -> float:
        """Variance of one coordinate of one sample [w]^2: s^2 or h^2/3."""
        return self.scale**2 if self.noise == "gaussian" else self.scale**2 / 3.0

    @property
    def smoothness(self) -> float:
        """L = max(a), exact for F and G."""
        return float(np.max(self.curvature))

    @property
    def per_sample_variance(self) -> float:
        """sigma^2 = E||grad f(w; xi) - grad F_k(w)||^2 = c tr(A^2), the same at every w and k."""
        return self.coordinate_variance * float(np.sum(self.curvature**2))

    @property
    def shift(self) -> float:
        """delta = ||grad G(w) - grad F(w)|| = ||A (mu_0 - mu_T)||, the same at every w."""
        return float(np.linalg.norm(self.curvature * (self.general_mean - self.task_mean)))

    @property
    def initial_gap(self) -> float:
        """Phi = F(w_0) - F*."""
        offset = self.start - self.task_mean
        return 0.5 * float(offset @ (self.curvature * offset))

    @property
    def grad_bound(self) -> float:
        """G = ||a * width(B)||: bounds ||grad f(w; xi)|| over the box B of reachable iterates
        and data (``uniform``; ``inf`` for Gaussian data)."""
        if self.noise == "gaussian":
            return float("inf")
        centres = np.vstack([self.device_means, self.general_mean])
        low = np.minimum(self.start, np.min(centres, axis=0) - self.scale)
        high = np.maximum(self.start, np.max(centres, axis=0) + self.scale)
        return float(np.linalg.norm(self.curvature * (high - low)))

    def gradient(self, w: np.ndarray) -> np.ndarray:
        """grad F(w) = A (w - mu_T) (rows of ``w`` are points)."""
        return self.curvature * (w - self.task_mean)

    def general_gradient(self, w: np.ndarray) -> np.ndarray:
        """grad G(w) = A (w - mu_0)."""
        return self.curvature * (w - self.general_mean)

    def batch_means(self, rng: np.random.Generator, mean: np.ndarray, batch: int, count: int) -> np.ndarray:
        """``count`` means of ``batch`` i.i.d. samples around ``mean`` (count, d)."""
        if self.noise == "gaussian":
            return mean + self.scale / np.sqrt(batch) * rng.standard_normal((count, self.dim))
        return mean + rng.uniform(-self.scale, self.scale, (count, batch, self.dim)).mean(axis=1)


def train(
    task: ShiftedQuadratic,
    pretrain_batches,
    finetune_batches,
    learning_rate: float,
    rng: np.random.Generator,
    count: int,
) -> np.ndarray:
    """||grad F(w_t)||^2 for t = 0..M+N-1 (the iterates the bound averages), for ``count``
    independent runs, shape (count, M + N). ``pretrain_batches``: D(m) (M,);
    ``finetune_batches``: B_k(n) (N, K)."""
    pre, fine = _schedules(task, pretrain_batches, finetune_batches)
    pre_rng, fine_rng = rng.spawn(2)
    w = np.tile(task.start, (count, 1))
    norms = np.empty((count, len(pre) + len(fine)))
    step = learning_rate * task.curvature
    for m, batch in enumerate(pre):
        norms[:, m] = np.sum(task.gradient(w) ** 2, axis=1)
        w = w - step * (w - task.batch_means(pre_rng, task.general_mean, int(batch), count))
    for n, batches in enumerate(fine, start=len(pre)):
        norms[:, n] = np.sum(task.gradient(w) ** 2, axis=1)
        aggregate = sum(alpha * task.batch_means(fine_rng, mean, int(b), count)
                        for alpha, mean, b in zip(task.weights, task.device_means, batches))
        w = w - step * (w - aggregate)
    return norms


def expected_norms(task: ShiftedQuadratic, pretrain_batches, finetune_batches, learning_rate: float) -> np.ndarray:
    """E||grad F(w_t)||^2 for t = 0..M+N-1 in closed form: per coordinate, the mean follows
    m+ = (1 - eta a) m + eta a mu and the variance v+ = (1 - eta a)^2 v + (eta a)^2 c q with
    q = 1/D(m) in pre-training and sum_k alpha_k^2/B_k(n) in fine-tuning."""
    pre, fine = _schedules(task, pretrain_batches, finetune_batches)
    a, c = task.curvature, task.coordinate_variance
    keep, move = 1.0 - learning_rate * a, learning_rate * a
    mean, variance = task.start.astype(float), np.zeros(task.dim)
    result = []
    stages = [(task.general_mean, 1.0 / b) for b in pre]
    stages += [(task.task_mean, float(np.sum(task.weights**2 / b))) for b in fine]
    for target, q in stages:
        result.append(float(np.sum(a**2 * ((mean - task.task_mean) ** 2 + variance))))
        mean = keep * mean + move * target
        variance = keep**2 * variance + move**2 * c * q
    return np.array(result)


def _schedules(task, pretrain_batches, finetune_batches) -> tuple[np.ndarray, np.ndarray]:
    pre = np.asarray(pretrain_batches, dtype=float).reshape(-1)
    fine = np.asarray(finetune_batches, dtype=float).reshape(-1, task.devices)
    if np.any(pre < 1) or np.any(fine < 1):
        raise ValueError("batch sizes must be >= 1")
    return pre, fine
