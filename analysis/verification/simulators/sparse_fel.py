"""Sparse-update federated learning with device selection: the process TinyFEL's bound assumes.

The task is a layered logistic network on bounded data: layer l owns the weights w_l (a
block of ``block`` numbers) and reads its own input block x_l, which lies on a sphere of
radius r_l; the output is z = sum_l w_l' x_l and the loss f = log(1 + exp(-y z)), y = +-1.
Device k holds a finite local data set (its own teacher and label noise: non-i.i.d.);
F_k is the mean loss on it and F = sum_k p_k F_k. The bound's constants:

* G_l^2 = r_l^2 bounds ||grad_l F_k(w)||^2 for every w, since |f'| <= 1 (a bound, not the
  supremum);
* sigma^2 = sum_l r_l^2 bounds the per-sample gradient variance (a bound);
* L_s = lambda_max(sum_k p_k X_k'X_k/D_k)/4 is the exact supremum of ||Hessian of F||
  (attained at w = 0, where every sigmoid slope is 1/4);
* Delta = F(0) - F* with F(0) = log 2 and F* estimated by convex minimisation (Newton's
  method to a gradient norm below 1e-10): an estimate.

One round: each selected device k draws ``batch`` samples with replacement, computes the
gradient of the top layers s_k..L only (back-propagation stops at layer s_k), and uploads
them; the server adds sum_k p_k a_k (masked gradient) to each layer (``unnormalised``, p over
all devices) or divides layer l's sum by its coverage u_l (``normalised``); w <- w - eta g.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

OPTIMUM_GRADIENT_TOLERANCE = 1e-10
"""F* is accepted when the full gradient norm at the minimiser is below this."""


@dataclass(frozen=True, eq=False)
class LayeredLogistic:
    """The task: ``radii`` r_l (L,); ``block`` weights per layer; ``features`` per device
    (D_k, L*block) with ||x_l|| = r_l; ``labels`` per device (D_k,) in {-1, +1};
    ``weights`` p_k (K,), summing to 1."""

    radii: np.ndarray
    block: int
    features: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    weights: np.ndarray

    @classmethod
    def random(
        cls,
        radii,
        samples,
        weights=None,
        block: int = 2,
        seed: int = 0,
        label_noise: float = 0.2,
        heterogeneity: float = 0.5,
    ) -> LayeredLogistic:
        """A random task: device k gets ``samples[k]`` points; each input block uniform on
        its sphere; labels from a shared teacher plus a device offset (``heterogeneity``),
        flipped with probability ``label_noise``. ``weights`` default to samples / sum."""
        rng = np.random.default_rng(seed)
        radii = np.asarray(radii, dtype=float)
        layers = len(radii)
        teacher = rng.normal(size=layers * block)
        features, labels = [], []
        for count in samples:
            blocks = rng.normal(size=(int(count), layers, block))
            blocks *= (radii[None, :, None] / np.linalg.norm(blocks, axis=2, keepdims=True))
            x = blocks.reshape(int(count), layers * block)
            own = teacher + heterogeneity * rng.normal(size=teacher.shape)
            y = np.sign(x @ own + 1e-12)
            y[rng.random(int(count)) < label_noise] *= -1
            features.append(x)
            labels.append(y)
        weights = np.asarray(samples if weights is None else weights, dtype=float)
        return cls(radii, block, tuple(features), tuple(labels), weights / weights.sum())

    @property
    def layers(self) -> int:
        return len(self.radii)

    @property
    def devices(self) -> int:
        return len(self.weights)

    @property
    def grad_sq_bounds(self) -> np.ndarray:
        """G_l^2 = r_l^2 (bounds)."""
        return self.radii**2

    @property
    def variance_bound(self) -> float:
        """sigma^2 = sum_l r_l^2 >= E||per-sample gradient - grad F_k||^2 (a bound)."""
        return float(np.sum(self.radii**2))

    @cached_property
    def _pooled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All points (D, dim), their labels and their weights p_k / D_k in F."""
        x = np.concatenate(self.features)
        y = np.concatenate(self.labels)
        c = np.concatenate([np.full(len(f), w / len(f)) for f, w in zip(self.features, self.weights)])
        return x, y, c

    @cached_property
    def smoothness(self) -> float:
        """L_s = lambda_max(sum_k p_k X_k'X_k/D_k)/4 (the exact supremum)."""
        x, _, c = self._pooled
        return float(np.linalg.eigvalsh((x * c[:, None]).T @ x)[-1] / 4)

    def loss(self, w: np.ndarray) -> np.ndarray:
        """F(w) for a stack of weights (S, dim)."""
        x, y, c = self._pooled
        return np.logaddexp(0.0, -(w @ x.T) * y) @ c

    def gradient(self, w: np.ndarray) -> np.ndarray:
        """grad F(w) (S, dim), exact over the local data sets."""
        x, y, c = self._pooled
        slope = -y * _sigmoid(-(w @ x.T) * y)
        return (slope * c) @ x

    @cached_property
    def optimum(self) -> float:
        """F* by damped Newton steps (F is convex; small dimension); raises if no minimiser is
        found (separable data)."""
        x, y, c = self._pooled
        w = np.zeros(x.shape[1])
        for _ in range(100):
            gradient = self.gradient(w[None])[0]
            if np.linalg.norm(gradient) <= OPTIMUM_GRADIENT_TOLERANCE:
                return float(self.loss(w[None])[0])
            p = _sigmoid(-(x @ w) * y)
            hessian = (x * (c * p * (1 - p))[:, None]).T @ x
            direction = np.linalg.solve(hessian, -gradient)
            step, current = 1.0, float(self.loss(w[None])[0])
            while self.loss((w + step * direction)[None])[0] > current + 1e-4 * step * gradient @ direction:
                step /= 2
                if step < 1e-12:
                    break
            w = w + step * direction
        norm = float(np.linalg.norm(self.gradient(w[None])[0]))
        raise RuntimeError(f"F* not found (gradient norm {norm:.2g}): is the data separable?")

    @property
    def initial_gap(self) -> float:
        """Delta = F(0) - F* = log 2 - F* (F* estimated)."""
        return float(np.log(2.0) - self.optimum)

    def sparse_round(
        self,
        w: np.ndarray,
        selected,
        first_layer,
        batch: int,
        rng: np.random.Generator,
        normalised: bool = False,
    ) -> np.ndarray:
        """The aggregated update direction g of one round (S, dim). ``first_layer[k]`` is
        s_k (1-based): device k trains layers s_k..L."""
        seeds = w.shape[0]
        aggregate = np.zeros_like(w)
        coverage = np.zeros(self.layers)
        for k in range(self.devices):
            if not selected[k]:
                continue
            x, y = self.features[k], self.labels[k]
            index = rng.integers(len(y), size=(seeds, batch))
            xb, yb = x[index], y[index]  # (S, B, dim), (S, B)
            slope = -yb * _sigmoid(-np.einsum("sbd,sd->sb", xb, w) * yb)
            start = (int(first_layer[k]) - 1) * self.block  # back-propagation stops at s_k
            gradient = np.einsum("sb,sbd->sd", slope, xb[:, :, start:]) / batch
            aggregate[:, start:] += self.weights[k] * gradient
            coverage[int(first_layer[k]) - 1:] += self.weights[k]
        if normalised:
            per_weight = np.repeat(np.where(coverage > 0, coverage, 1.0), self.block)
            aggregate = aggregate / per_weight
        return aggregate


def train(
    task: LayeredLogistic,
    selected,
    first_layer,
    batch: int,
    step: float,
    rounds: int,
    rng: np.random.Generator,
    seeds: int,
    normalised: bool = False,
) -> np.ndarray:
    """Run ``seeds`` trainings side by side from w = 0; return ||grad F(w_r)||^2 for
    r = 0..rounds-1 (seeds, rounds)."""
    w = np.zeros((seeds, task.layers * task.block))
    norms = np.empty((seeds, rounds))
    for r in range(rounds):
        norms[:, r] = np.sum(task.gradient(w) ** 2, axis=1)
        w = w - step * task.sparse_round(w, selected, first_layer, batch, rng, normalised)
    return norms


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
