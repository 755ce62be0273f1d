"""The heads: small classifiers over the frozen backbone's per-window tensors, trained with JAX
on the CPU (seeded, full determinism on a given machine), exported as ONNX nodes that read the
backbone's own tensors so that backbone and head run as one graph.

Kinds (each measured by `train_heads.py --compare`):
- linear:    logistic regression on the embedding (YAMNet 1024-d, CED-Tiny 192-d).
- mlp:       one hidden layer of 256 ReLU units on the embedding.
- attention: per-class attention pooling over the last layer's positions (YAMNet's six
             time-frequency cells, CED-Tiny's tokens; [003] eq. 22):
             y = sum_i softmax(v(x_i)) * sigmoid(f(x_i)).
- fusion:    logistic regression on mean + max over time of a middle and the last layer ([002]).
A `+scores` suffix adds the backbone's AudioSet log-odds to the input, so the head keeps what
AudioSet training knows (fireworks, slams, bells) in its decision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("linear", "linear+scores", "mlp", "mlp+scores", "attention", "fusion", "fusion+scores")


@dataclass
class Head:
    kind: str
    params: dict[str, np.ndarray]
    mean: np.ndarray  # input standardisation
    std: np.ndarray
    score_mean: np.ndarray | None = None
    score_std: np.ndarray | None = None


# The AudioSet log-odds a `+scores` head reads, clipped as the exported graph clips them.
LOGIT_CLIP = 14.0


def view(kind: str) -> str:
    base = kind.split("+")[0]
    return {"linear": "embedding", "mlp": "embedding", "attention": "positions", "fusion": "fusion"}[base]


def inputs(kind: str, feats: dict[str, np.ndarray], idx: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray | None]:
    x = feats[view(kind)][idx].astype(np.float32)
    s = np.clip(feats["logits"][idx], -LOGIT_CLIP, LOGIT_CLIP) if kind.endswith("+scores") else None
    return x, s


def _forward(kind: str, p, x, s):
    import jax.numpy as jnp

    base = kind.split("+")[0]
    if base == "attention":
        import jax

        f = jnp.einsum("npd,dk->npk", x, p["wf"]) + p["bf"]
        a = jnp.einsum("npd,dk->npk", x, p["wa"]) + p["ba"]
        # logit(sum_i w_i sigmoid(f_i)), with 1 - sum_i w_i sigmoid(f_i) = sum_i w_i sigmoid(-f_i):
        # in log space, so no probability rounds to 0 or 1.
        lse = jax.scipy.special.logsumexp
        return lse(a + jax.nn.log_sigmoid(f), axis=1) - lse(a + jax.nn.log_sigmoid(-f), axis=1)
    h = x
    if base == "mlp":
        h = jnp.maximum(h @ p["w1"] + p["b1"], 0.0)
    out = h @ p["w"] + p["b"]
    if s is not None:
        out = out + s @ p["ws"]
    return out


def init(kind: str, dim: int, classes: int, rng: np.random.Generator, scores: int, hidden: int = 256):
    base = kind.split("+")[0]
    g = lambda *shape: (rng.standard_normal(shape) * 0.01).astype(np.float32)  # noqa: E731
    if base == "attention":
        p = {"wf": g(dim, classes), "bf": np.zeros(classes, np.float32),
             "wa": g(dim, classes), "ba": np.zeros(classes, np.float32)}
    elif base == "mlp":
        p = {"w1": (rng.standard_normal((dim, hidden)) * np.sqrt(2 / dim)).astype(np.float32),
             "b1": np.zeros(hidden, np.float32), "w": g(hidden, classes), "b": np.zeros(classes, np.float32)}
    else:
        p = {"w": g(dim, classes), "b": np.zeros(classes, np.float32)}
    if kind.endswith("+scores"):
        p["ws"] = np.zeros((scores, classes), np.float32)
    return p


def train(kind: str, feats: dict[str, np.ndarray], labels: np.ndarray, seed: int, epochs: int = 30,
          batch: int = 512, lr: float = 1e-3, l2: float = 1e-3, weights: np.ndarray | None = None) -> Head:
    """Weighted binary cross-entropy per class (positives and negatives weigh the same in total;
    windows labelled -1 are left out; `weights` scales each window), Adam, L2 on the weights."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    x_all, s_all = inputs(kind, feats, slice(None))
    axes = (0, 1) if x_all.ndim == 3 else (0,)
    mean, std = x_all.mean(axis=axes), x_all.std(axis=axes) + 1e-3
    x_all = (x_all - mean) / std
    s_mean = s_std = None
    if s_all is not None:
        s_mean, s_std = s_all.mean(axis=0), s_all.std(axis=0) + 1e-3
        s_all = (s_all - s_mean) / s_std
    y = labels.astype(np.float32)
    known = (labels >= 0).astype(np.float32)
    if weights is not None:
        known = known * weights[:, None].astype(np.float32)
    pos = ((labels == 1).sum(axis=0)).astype(np.float32)
    neg = ((labels == 0).sum(axis=0)).astype(np.float32)
    w_pos = jnp.asarray(0.5 * (pos + neg) / np.maximum(pos, 1))
    w_neg = jnp.asarray(0.5 * (pos + neg) / np.maximum(neg, 1))
    params = {k: jnp.asarray(v) for k, v in init(kind, x_all.shape[-1], labels.shape[1], rng, feats["logits"].shape[1]).items()}

    def loss(p, x, s, y, m):
        z = _forward(kind, p, x, s)
        ll = -(w_pos * y * jax.nn.log_sigmoid(z) + w_neg * (1 - y) * jax.nn.log_sigmoid(-z))
        reg = sum(jnp.sum(v * v) for k, v in p.items() if k.startswith("w"))
        return jnp.sum(ll * m) / jnp.maximum(jnp.sum(m), 1.0) + l2 * reg

    grad = jax.jit(jax.value_and_grad(loss))
    m1 = {k: jnp.zeros_like(v) for k, v in params.items()}
    m2 = {k: jnp.zeros_like(v) for k, v in params.items()}
    b1, b2, t = 0.9, 0.999, 0
    n = len(y)
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            idx = order[i: i + batch]
            s = None if s_all is None else s_all[idx]
            _, g = grad(params, x_all[idx], s, y[idx], known[idx])
            t += 1
            for k in params:
                m1[k] = b1 * m1[k] + (1 - b1) * g[k]
                m2[k] = b2 * m2[k] + (1 - b2) * g[k] * g[k]
                params[k] = params[k] - lr * (m1[k] / (1 - b1**t)) / (jnp.sqrt(m2[k] / (1 - b2**t)) + 1e-8)
    return Head(kind, {k: np.asarray(v) for k, v in params.items()}, mean.astype(np.float32),
                std.astype(np.float32), s_mean, s_std)


def calibrate(head: Head, feats: dict[str, np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Per-class temperatures fitted on held-out windows (the cross-entropy's minimum over a grid),
    folded into the head's last layer. The balanced loss leaves the heads overconfident: scores
    pinned at exactly 1.0 leave no room for thresholds, and a class cannot beat a confuser it
    ties with."""
    z = logits(head, feats)
    grid = np.geomspace(1.0, 64.0, 25)
    temps = np.ones(z.shape[1], np.float32)
    for k in range(z.shape[1]):
        known = labels[:, k] >= 0
        y, zk = labels[known, k].astype(np.float64), z[known, k].astype(np.float64)
        if not (0 < y.sum() < y.size):
            continue
        w = np.where(y == 1, 0.5 / y.sum(), 0.5 / (y.size - y.sum()))
        loss = [np.sum(w * (np.logaddexp(0, -zk / t) * y + np.logaddexp(0, zk / t) * (1 - y))) for t in grid]
        temps[k] = grid[int(np.argmin(loss))]
    if head.kind.split("+")[0] != "attention":  # the attention head's output is no logit
        for name in ("w", "b", "ws"):
            if name in head.params:
                head.params[name] = (head.params[name] / temps).astype(np.float32)
    else:
        temps[:] = 1.0
    return temps


def logits(head: Head, feats: dict[str, np.ndarray], batch: int = 4096) -> np.ndarray:
    import jax.numpy as jnp

    out = []
    n = len(feats["scores"])
    for i in range(0, n, batch):
        x, s = inputs(head.kind, feats, slice(i, i + batch))
        x = (x - head.mean) / head.std
        if s is not None:
            s = (s - head.score_mean) / head.score_std
        out.append(np.asarray(_forward(head.kind, {k: jnp.asarray(v) for k, v in head.params.items()}, x, s)))
    return np.concatenate(out).astype(np.float32)


def predict(head: Head, feats: dict[str, np.ndarray]) -> np.ndarray:
    return (1 / (1 + np.exp(-logits(head, feats).astype(np.float64)))).astype(np.float32)
