"""Kernel vs network under a spiked covariance (Ba, Erdogdu, Suzuki, Wang & Wu, NeurIPS 2023):
test error against the spike exponent beta (theta = d^beta). Monte Carlo only: no
deterministic theory is claimed for this experiment.

Data x ~ N(0, I_d + theta mu mu^T), target y = sigma*(<x, mu>/sqrt(1+theta)) with a
unit-variance Hermite link of information exponent k and degree p. Three learners on the same
samples (n = psi d for each stage, fresh test set):

* network: two-layer f(x) = sum_i a_i relu(h_i(x) + b_i), N neurons, w_i uniform on the
  sphere, a_i = +-1/sqrt(N), biases b_i uniform on [-2.5, 2.5]; ONE large gradient step on the first layer,
  W <- W - eta sqrt(N) grad_W (1/2n) sum (y - f)^2 on n samples, then each row is rescaled to
  unit pre-activation variance (||w||_Sigma = 1, the batch-norm-like normalisation of paper 2;
  the same rescaling is applied at initialisation), then ridge regression of y on the features
  relu(h_i + b_i) with fresh n samples;
* random features: the same without the gradient step (eta = 0);
* kernel ridge regression with the rotation-invariant kernel exp(<x, x'>/d) on the same 2n
  samples as the network uses in total.
Ridge penalties (10^-4 ... 10^2) are chosen on a held-out quarter of the training samples.
Float32 throughout.

The paper's thresholds (docs/spiked.md, "Kernel vs network thresholds"): KRR learns f* iff
beta >= 1 - 1/p; the network after one step learns if beta > 1 - 1/k. For (k, p) = (2, 4):
1/2 and 3/4; for (1, 3): 0 and 2/3. At the CPU sizes here (d = 512 by default) the transitions are smooth crossovers, not
sharp thresholds; the figure marks both predicted thresholds.

Runtime at the defaults: about 13 minutes on a shared 2-core CPU (``--dim 256 --seeds 1
--betas 5``: about 1 minute); use ``--dim 2048`` or more on a GPU.

Usage: python examples/spiked_thresholds.py [--out figures] [--dim 512] [--seeds 2]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hdsgd.spiked import hermite_e_eval, information_exponent, parse_link, series_degree, to_hermite_e

LAMBDAS = jnp.asarray(np.logspace(-4, 2, 13), jnp.float32)
DTYPE = jnp.float32


def sample(key, n, d, theta, link_e):
    """(x, y): x = z + (sqrt(1+theta) - 1) z_1 e_1 (mu = e_1: every learner here is rotation
    invariant), y = sigma*(z_1)."""
    z = jax.random.normal(key, (n, d), dtype=DTYPE)
    u = z[:, 0]
    x = z.at[:, 0].multiply(jnp.sqrt(1.0 + theta).astype(DTYPE))
    return x, hermite_e_eval(link_e, u)


def sigma_norm(w, theta):
    """||w||_Sigma per row: sqrt(||w||^2 + theta w_1^2)."""
    return jnp.sqrt(jnp.sum(w * w, axis=1) + theta * w[:, 0] ** 2)


@jax.jit
def ridge_fit_predict(feat, y, feat_test, valid):
    """Ridge of y on standardised features, the penalty (from LAMBDAS) chosen on the rows
    where ``valid`` is True; one eigendecomposition serves every penalty. Test predictions."""
    tr = ~valid
    n = jnp.sum(tr)
    wts = tr.astype(feat.dtype)
    mean = wts @ feat / n
    std = jnp.sqrt(wts @ (feat - mean) ** 2 / n) + 1e-6
    f, ft = (feat - mean) / std, (feat_test - mean) / std
    y_mean = wts @ y / n
    ftr = f * wts[:, None]
    evals, evecs = jnp.linalg.eigh(ftr.T @ ftr / n)
    proj = evecs.T @ (ftr.T @ (y - y_mean) / n)
    coefs = evecs @ (proj[:, None] / (evals[:, None] + LAMBDAS[None, :]))  # (N, L)
    errs = jnp.sum(valid[:, None] * (f @ coefs + y_mean - y[:, None]) ** 2, axis=0)
    return ft @ coefs[:, jnp.argmin(errs)] + y_mean


@jax.jit
def krr_fit_predict(x, y, x_test, valid):
    """Kernel ridge regression, kernel exp(<x, x'>/d) on the rows where ``valid`` is False,
    penalty n lambda (lambda from LAMBDAS) chosen on the others. Test predictions."""
    d = x.shape[1]
    tr = ~valid
    n = jnp.sum(tr)
    mask = tr[:, None] & tr[None, :]
    k = jnp.where(mask, jnp.exp(x @ x.T / d), 0.0) + jnp.diag(valid.astype(x.dtype))
    y_mean = jnp.sum(jnp.where(tr, y, 0.0)) / n
    yc = jnp.where(tr, y - y_mean, 0.0)
    evals, evecs = jnp.linalg.eigh(k)
    proj = evecs.T @ yc
    alphas = evecs @ (proj[:, None] / (evals[:, None] + n * LAMBDAS[None, :]))
    alphas = jnp.where(tr[:, None], alphas, 0.0)
    errs = jnp.sum(valid[:, None] * (jnp.exp(x @ x.T / d) @ alphas + y_mean - y[:, None]) ** 2, axis=0)
    return jnp.exp(x_test @ x.T / d) @ alphas[:, jnp.argmin(errs)] + y_mean


def one_run(key, d, beta, link_e, psi, width, eta, n_test=4000):
    """Normalised test errors (MSE / Var y) of (network, random features, KRR)."""
    theta = float(d) ** beta
    n = int(psi * d)
    link_e = np.asarray(link_e, np.float32)
    ks = jax.random.split(key, 6)
    x1, y1 = sample(ks[0], n, d, theta, link_e)
    x2, y2 = sample(ks[1], n, d, theta, link_e)
    xt, yt = sample(ks[2], n_test, d, theta, link_e)
    w0 = jax.random.normal(ks[3], (width, d), dtype=DTYPE)
    w0 = w0 / sigma_norm(w0, theta)[:, None]
    a = jnp.where(jax.random.bernoulli(ks[4], 0.5, (width,)), 1.0, -1.0).astype(DTYPE) / math.sqrt(width)
    b = jax.random.uniform(ks[5], (width,), dtype=DTYPE, minval=-2.5, maxval=2.5)

    # one large step on W: grad_W (1/2n) sum_j (y_j - f(x_j))^2, scaled by eta sqrt(N)
    pre = x1 @ w0.T + b
    resid = y1 - jax.nn.relu(pre) @ a
    grad = -(x1.T @ (resid[:, None] * (pre > 0) * a[None, :])).T / n
    w1 = w0 - eta * math.sqrt(width) * grad
    w1 = w1 / sigma_norm(w1, theta)[:, None]

    valid = jnp.arange(n) >= n - n // 4  # the last quarter chooses the ridge penalty
    var = float(jnp.var(yt))
    errs = []
    for w in (w1, w0):
        pred = ridge_fit_predict(jax.nn.relu(x2 @ w.T + b), y2, jax.nn.relu(xt @ w.T + b), valid)
        errs.append(float(jnp.mean((pred - yt) ** 2)) / var)
    xk, yk = jnp.concatenate([x1, x2]), jnp.concatenate([y1, y2])
    pred = krr_fit_predict(xk, yk, xt, jnp.concatenate([valid, valid]))
    errs.append(float(jnp.mean((pred - yt) ** 2)) / var)
    # alignment of the trained first layer with mu (mean |cos|)
    cos = jnp.mean(jnp.abs(w1[:, 0]) / jnp.sqrt(jnp.sum(w1 * w1, axis=1)))
    return errs, float(cos)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures)")
    p.add_argument("--dim", type=int, default=512, help="dimension d (default 512; 2048+ on a GPU)")
    p.add_argument("--psi", type=float, default=2.0, help="samples per stage / d (default 2)")
    p.add_argument("--width", type=float, default=1.0, help="neurons / d (default 1)")
    p.add_argument("--eta", type=float, default=2.0, help="first-layer step eta (default 2)")
    p.add_argument("--seeds", type=int, default=2, help="repetitions per point (default 2)")
    p.add_argument("--betas", type=int, default=9, help="number of beta values in [0, 0.95] (default 9)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = jax.random.key(args.seed)
    betas = np.linspace(0.0, 0.95, args.betas)
    width = int(args.width * args.dim)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    lines = []
    for ti, (ax, name) in enumerate(zip(axes, ("he2+he4", "he1+he3"))):
        coeffs = parse_link("link", name)
        k, deg = information_exponent(coeffs), series_degree(coeffs)
        link_e = to_hermite_e(coeffs)
        start = time.perf_counter()
        res = np.zeros((len(betas), args.seeds, 3))
        cos = np.zeros((len(betas), args.seeds))
        for i, beta in enumerate(betas):
            for s in range(args.seeds):
                res[i, s], cos[i, s] = one_run(jax.random.fold_in(key, 10000 * ti + 100 * i + s),
                                               args.dim, beta, link_e, args.psi, width, args.eta)
        mean = res.mean(axis=1)
        sem = res.std(axis=1, ddof=1) / math.sqrt(args.seeds) if args.seeds > 1 else 0 * mean
        for j, (label, style) in enumerate((("network, one step + ridge", "o-"),
                                            ("random features (no step)", "s--"),
                                            ("kernel ridge, exp(<x,x'>/d)", "^-"))):
            ax.errorbar(betas, mean[:, j], yerr=sem[:, j], fmt=style, capsize=2, label=label)
        ax.axvline(1 - 1 / k, color="C0", ls=":", label=f"network threshold 1-1/k = {1 - 1 / k:.2f}")
        ax.axvline(1 - 1 / deg, color="C2", ls=":", label=f"kernel threshold 1-1/p = {1 - 1 / deg:.2f}")
        ax.set_xlabel("beta (theta = d^beta)")
        ax.set_title(f"{name}: (k, p) = ({k}, {deg}), d = {args.dim}")
        ax.legend(fontsize=7)
        for i, beta in enumerate(betas):
            line = (f"{name} beta={beta:.2f}: test MSE/Var network {mean[i, 0]:.3f} RF {mean[i, 1]:.3f} "
                    f"KRR {mean[i, 2]:.3f} (mean |cos(w, mu)| after the step {cos[i].mean():.2f})")
            print(line)
            lines.append(line)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    axes[0].set_ylabel("test MSE / Var(y)")
    axes[0].set_ylim(0, 1.3)
    fig.suptitle(f"one gradient step vs kernel under a spiked covariance (Monte Carlo, {args.seeds} seeds; "
                 f"n = {args.psi:g} d per stage, N = {width})")
    fig.tight_layout()
    path = args.out / "spiked_thresholds.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
    return lines


if __name__ == "__main__":
    main()
