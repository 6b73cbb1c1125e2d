"""Parallel split learning on a layered quadratic task: the process EdgeSplit's bound assumes.

The task is a network of L layers h_l = P_l h_{l-1} + theta_l (fixed orthogonal P_l,
trainable shifts theta_l in R^d) with input h_0 = x and the loss
f(theta; x, y) = (h_L - y)' A (h_L - y) / 2 (A diagonal, positive). Device i draws
x ~ N(mx_i, sx^2 I), y ~ N(my_i, sy^2 I) (non-i.i.d. across devices); F = sum_i p_i E_i f.
With J the d x (L d) map theta -> sum_l P_L..P_{l+1} theta_l (J J' = L I), every constant of
the bound is exact:

* smoothness L_f = L max(A) (the Hessian is J'AJ);
* per-sample gradient variance sigma_1^2 = (sx^2 + sy^2) L tr(A^2) at every theta, so one
  round's aggregate has sigma^2 = sigma_1^2 sum_i p_i^2 / beta;
* Delta = F(theta_0) - inf F = (J theta_0 + mu)' A (J theta_0 + mu) / 2 with
  mu = sum_i p_i (P_L..P_1 mx_i - my_i).

One round: every device draws beta samples, runs layers 1..c_i, sends the cut activations
(smashed data) to the server, which runs layers c_i+1..L, back-propagates to the cut and
returns the gradient there; the device back-propagates through its layers. Device-side and
server-side gradients are aggregated exactly with weights p_i (FedAvg of the sub-models after
one step), then theta <- theta - gamma g. The cut changes who computes what, not the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True, eq=False)
class LayeredQuadratic:
    """The task: ``curvature`` diag(A) (d,); ``mixing`` P_l (L, d, d), orthogonal;
    ``input_mean``, ``target_mean`` (N, d); ``input_std``, ``target_std`` [-];
    ``start`` theta_0 (L, d); ``weights`` p_i (N,), summing to 1."""

    curvature: np.ndarray
    mixing: np.ndarray
    input_mean: np.ndarray
    target_mean: np.ndarray
    input_std: float
    target_std: float
    start: np.ndarray
    weights: np.ndarray

    @classmethod
    def random(
        cls,
        layers: int,
        weights: np.ndarray,
        dim: int = 2,
        seed: int = 0,
        heterogeneity: float = 1.0,
        noise: float = 0.7,
        spread: float = 10.0,
    ) -> LayeredQuadratic:
        """A random task with ``layers`` layers and one device per entry of ``weights``:
        curvatures log-uniform over a ratio ``spread`` with max 1, random orthogonal mixing,
        device means N(0, heterogeneity^2), input and target noise ``noise``/sqrt(2) each,
        theta_0 ~ N(0, 1)."""
        rng = np.random.default_rng(seed)
        weights = np.asarray(weights, dtype=float)
        devices = len(weights)
        curvature = np.exp(rng.uniform(-np.log(spread), 0.0, dim))
        curvature[0] = 1.0
        mixing = np.stack([np.linalg.qr(rng.normal(size=(dim, dim)))[0] for _ in range(layers)])
        return cls(
            curvature=curvature,
            mixing=mixing,
            input_mean=rng.normal(size=(devices, dim)) * heterogeneity,
            target_mean=rng.normal(size=(devices, dim)) * heterogeneity,
            input_std=noise / np.sqrt(2),
            target_std=noise / np.sqrt(2),
            start=rng.normal(size=(layers, dim)),
            weights=weights / weights.sum(),
        )

    @property
    def layers(self) -> int:
        return self.mixing.shape[0]

    @property
    def devices(self) -> int:
        return len(self.weights)

    @property
    def dim(self) -> int:
        return len(self.curvature)

    # ---- exact constants -----------------------------------------------------------------
    @cached_property
    def residual_mean(self) -> np.ndarray:
        """mu = sum_i p_i (P_L..P_1 mx_i - my_i) (d,)."""
        mapped = self.input_mean
        for layer in range(self.layers):
            mapped = mapped @ self.mixing[layer].T
        return self.weights @ (mapped - self.target_mean)

    @property
    def smoothness(self) -> float:
        """L_f = L max(A) (exact)."""
        return float(self.layers * self.curvature.max())

    @property
    def per_sample_variance(self) -> float:
        """sigma_1^2 = (sx^2 + sy^2) L tr(A^2) (exact, the same at every theta)."""
        return float((self.input_std**2 + self.target_std**2) * self.layers * np.sum(self.curvature**2))

    def variance(self, batch: int) -> float:
        """sigma^2 of one round's aggregate: sigma_1^2 sum_i p_i^2 / beta (exact)."""
        return self.per_sample_variance * float(np.sum(self.weights**2)) / batch

    @property
    def initial_gap(self) -> float:
        """Delta = F(theta_0) - inf F (exact)."""
        output = self._output(self.start[None])[0] + self.residual_mean
        return float(0.5 * output @ (self.curvature * output))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """grad F(theta) = J'A(J theta + mu) for a stack of parameters (S, L, d)."""
        delta = (self._output(theta) + self.residual_mean) * self.curvature
        grads = np.empty_like(theta)
        for layer in reversed(range(self.layers)):
            grads[:, layer] = delta
            delta = delta @ self.mixing[layer]
        return grads

    def _output(self, theta: np.ndarray) -> np.ndarray:
        """J theta: the network's output on a zero input (S, d)."""
        h = np.zeros((theta.shape[0], self.dim))
        for layer in range(self.layers):
            h = h @ self.mixing[layer].T + theta[:, layer]
        return h

    # ---- the protocol ----------------------------------------------------------------------
    def split_round(self, theta: np.ndarray, cuts, batch: int, rng: np.random.Generator) -> np.ndarray:
        """The aggregated gradient of one round of parallel split learning (S, L, d);
        device i trains layers 1..cuts[i] (1-based; cuts[i] = L: no server part)."""
        seeds, dim = theta.shape[0], self.dim
        aggregate = np.zeros_like(theta)
        for device, cut in enumerate(cuts):
            x = self.input_mean[device] + self.input_std * rng.standard_normal((seeds, batch, dim))
            y = self.target_mean[device] + self.target_std * rng.standard_normal((seeds, batch, dim))
            smashed = self._forward(x, theta, 0, cut)  # on the device
            output = self._forward(smashed, theta, cut, self.layers)  # on the server
            server_grads, cut_gradient = self._backward((output - y) * self.curvature, cut, self.layers)
            device_grads, _ = self._backward(cut_gradient, 0, cut)  # back on the device
            aggregate += self.weights[device] * np.concatenate([device_grads, server_grads], axis=1)
        return aggregate

    def _forward(self, h: np.ndarray, theta: np.ndarray, first: int, stop: int) -> np.ndarray:
        """Layers first+1..stop (1-based) applied to activations h (S, B, d)."""
        for layer in range(first, stop):
            h = h @ self.mixing[layer].T + theta[:, None, layer]
        return h

    def _backward(self, delta: np.ndarray, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch-mean gradients of layers first+1..stop (S, stop - first, d) from the gradient
        at layer stop's output, and the gradient at layer first's output."""
        grads = np.empty((delta.shape[0], stop - first, delta.shape[2]))
        for layer in reversed(range(first, stop)):
            grads[:, layer - first] = delta.mean(axis=1)
            delta = delta @ self.mixing[layer]
        return grads, delta


def train(
    task: LayeredQuadratic,
    cuts,
    batch: int,
    step: float,
    rounds: int,
    rng: np.random.Generator,
    seeds: int,
) -> np.ndarray:
    """Run ``seeds`` independent trainings side by side for ``rounds`` rounds; return the
    exact ||grad F(theta_r)||^2 for r = 0..rounds-1, shape (seeds, rounds)."""
    theta = np.repeat(task.start[None], seeds, axis=0)
    norms = np.empty((seeds, rounds))
    for r in range(rounds):
        norms[:, r] = np.sum(task.gradient(theta) ** 2, axis=(1, 2))
        theta = theta - step * task.split_round(theta, cuts, batch, rng)
    return norms
