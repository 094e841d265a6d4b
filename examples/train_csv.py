"""Logistic regression on data/points.csv with shuffled mini-batches; unseeded on purpose.

Run it through `lockstep run`: lockstep seeds NumPy for it and records the data it reads.
"""

from __future__ import annotations

import numpy as np

import lockstep

data = np.loadtxt("data/points.csv", delimiter=",")
features, labels = data[:, :-1], data[:, -1]
weights = np.random.normal(scale=0.01, size=features.shape[1])  # seeded by lockstep run
with lockstep.start() as run:
    for step in range(200):
        batch = np.random.permutation(len(labels))[:32]
        probs = 1.0 / (1.0 + np.exp(-features[batch] @ weights))
        weights -= 0.1 * features[batch].T @ (probs - labels[batch]) / len(batch)
        if step % 10 == 9:
            all_probs = 1.0 / (1.0 + np.exp(-features @ weights))
            run.log(
                {
                    "accuracy": float(np.mean((all_probs > 0.5) == labels)),
                    "loss": float(np.mean((all_probs - labels) ** 2)),
                },
                step=step,
            )
np.save("model.npy", weights)
print(f"final accuracy {np.mean((1 / (1 + np.exp(-features @ weights)) > 0.5) == labels):.4f}")
