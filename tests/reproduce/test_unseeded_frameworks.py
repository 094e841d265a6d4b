"""Unmodified, unseeded training scripts come back IDENTICAL from `lockstep verify`."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep

TORCH_SCRIPT = textwrap.dedent("""
    import torch
    from torch.utils.data import DataLoader, TensorDataset, random_split

    data = TensorDataset(torch.randn(256, 8), torch.randint(0, 2, (256,)))
    train, test = random_split(data, [200, 56])
    loader = DataLoader(train, batch_size=16, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(3):
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    with open("metrics.json", "w") as handle:
        handle.write('{"loss": %r}' % float(loss))
    torch.save(model.state_dict(), "model.pt")
""")

SKLEARN_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=300, n_features=10)
    x_train, x_test, y_train, y_test = train_test_split(x, y)
    model = RandomForestClassifier(n_estimators=20, n_jobs=2).fit(x_train, y_train)
    np.save("proba.npy", model.predict_proba(x_test))
    json.dump({"accuracy": model.score(x_test, y_test)}, open("metrics.json", "w"))
""")


@pytest.mark.parametrize(
    ("module", "script"), [("torch", TORCH_SCRIPT), ("sklearn", SKLEARN_SCRIPT)]
)
def test_unseeded_script_verifies_identical(tmp_path: Path, module: str, script: str) -> None:
    pytest.importorskip(module)
    project = make_repo(
        tmp_path / "project", {"train.py": script, ".gitignore": "*.pt\n*.npy\nmetrics.json\n"}
    )
    assert lockstep(project, "init").returncode == 0
    first = lockstep(project, "run", "--name", "original", "--", sys.executable, "train.py")
    assert first.returncode == 0, first.stderr
    result = lockstep(project, "verify", "original", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "IDENTICAL"
    assert len(verdict["artifacts"]) == 2  # the model (or predictions) and metrics.json
