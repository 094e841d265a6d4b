"""A small, real training script: logistic regression on a generated dataset, with NumPy.

Tracked with the Python API; run it directly or through `lockstep run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lockstep


def make_data(rng: np.random.Generator, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    features = rng.normal(size=(n, 8))
    true_weights = np.linspace(-2.0, 2.0, 8)
    labels = (features @ true_weights + rng.normal(scale=0.5, size=n) > 0).astype(np.float64)
    return features, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    features, labels = make_data(rng)
    weights = np.zeros(features.shape[1])
    params = {"optimizer": {"name": "sgd", "lr": args.lr}, "epochs": args.epochs, "seed": args.seed}
    with lockstep.start(experiment="demo", params=params, tags={"model": "logreg"}) as run:
        for epoch in range(args.epochs):
            order = rng.permutation(len(labels))
            for batch in np.array_split(order, 20):
                probs = 1.0 / (1.0 + np.exp(-features[batch] @ weights))
                weights -= args.lr * features[batch].T @ (probs - labels[batch]) / len(batch)
            probs = 1.0 / (1.0 + np.exp(-features @ weights))
            eps = 1e-12
            loss = -np.mean(labels * np.log(probs + eps) + (1 - labels) * np.log(1 - probs + eps))
            accuracy = float(np.mean((probs > 0.5) == labels))
            run.log({"loss": float(loss), "accuracy": accuracy}, step=epoch)
        model = Path("model.npy")
        np.save(model, weights)
        run.log_artifact(model, kind="model")
        print(f"run {run.name}: loss {loss:.4f}, accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
