"""Write a small classification dataset to data/points.csv (or change one value in it)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--change-one-value",
        action="store_true",
        help="add 2.5 to one feature of one row of the existing file",
    )
    args = parser.parse_args()
    path = Path("data/points.csv")
    if args.change_one_value:
        data = np.loadtxt(path, delimiter=",")
        data[17, 2] += 2.5
    else:
        rng = np.random.default_rng(2026)
        features = rng.normal(size=(400, 6))
        labels = features @ np.linspace(-1, 1, 6) + rng.normal(scale=0.3, size=400) > 0
        data = np.c_[features, labels.astype(float)]
    path.parent.mkdir(exist_ok=True)
    np.savetxt(path, data, delimiter=",", fmt="%.6f")


if __name__ == "__main__":
    main()
