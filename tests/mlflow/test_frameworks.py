"""Framework loggers under `lockstep run`, unmodified, on tiny randomly initialised models
on CPU (nothing downloaded): PyTorch Lightning's MLFlowLogger and TensorBoardLogger, and
Hugging Face Transformers' Trainer reporting to MLflow and TensorBoard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep, show

LIGHTNING = """\
import torch
import lightning as L
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger


class Tiny(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        self.log("tb_only", loss * 2, logger=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


L.seed_everything(0)
x = torch.randn(64, 4)
y = x.sum(1, keepdim=True)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
loggers = {"mlflow": [MLFlowLogger(experiment_name="lightning")],
           "tensorboard": [TensorBoardLogger("tb", name="tiny")]}[__import__("sys").argv[1]]
trainer = L.Trainer(
    max_epochs=3, logger=loggers, log_every_n_steps=2, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
)
trainer.fit(Tiny(), loader)
"""

TRANSFORMERS = """\
import sys
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32, num_labels=2)
model = BertForSequenceClassification(config)


class Toy(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randint(0, 64, (32, 8), generator=g)
        self.y = self.x.sum(1) % 2

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        ones = torch.ones(8, dtype=torch.long)
        return {"input_ids": self.x[i], "attention_mask": ones, "labels": self.y[i]}


args = TrainingArguments(
    output_dir="out", report_to=[sys.argv[1]], logging_steps=1, max_steps=6,
    per_device_train_batch_size=8, use_cpu=True, save_strategy="no", disable_tqdm=True, seed=0,
)
Trainer(model=model, args=args, train_dataset=Toy()).train()
"""


def run_script(tmp_path: Path, name: str, script: str, logger: str) -> dict:  # type: ignore[type-arg]
    root = make_repo(tmp_path / name, {"train.py": script, ".gitignore": "tb/\nout/\nmlruns/\n"})
    done = lockstep(
        root, "run", "--seed", "1", "--", sys.executable, "train.py", logger, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = json.loads(lockstep(root, "runs", "--json").stdout)
    assert len(runs) == 1  # the logger's run is the run lockstep captured
    return show(root)


@pytest.mark.slow
def test_lightning_mlflow_logger(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    record = run_script(tmp_path, "lmlflow", LIGHTNING, "mlflow")
    assert record["experiment"] == "lightning"
    assert record["params"] == {"lr": "0.05"}
    assert record["metric_summaries"]["train_loss"]["count"] == 12  # 24 steps, every 2nd
    assert record["code"]["kind"] == "git" and record["seed"]["value"] == 1


@pytest.mark.slow
def test_lightning_tensorboard_logger(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    pytest.importorskip("tensorboard")
    record = run_script(tmp_path, "ltb", LIGHTNING, "tensorboard")
    assert record["metric_summaries"]["train_loss"]["count"] == 12
    assert "tb_only" not in record["metrics"]
    (source,) = record["command"]["metrics_from_files"]
    assert source["path"].startswith("tb/tiny/version_0/events.out.tfevents.")
    assert "train_loss" in source["keys"]


@pytest.mark.slow
def test_transformers_trainer_reports_to_mlflow(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    record = run_script(tmp_path, "hfmlflow", TRANSFORMERS, "mlflow")
    assert record["params"]["max_steps"] == "6"
    assert record["params"]["learning_rate"] == "5e-05"
    assert record["metric_summaries"]["loss"]["count"] == 6
    assert "train_runtime" in record["metrics"]


@pytest.mark.slow
def test_transformers_trainer_reports_to_tensorboard(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("tensorboard")
    record = run_script(tmp_path, "hftb", TRANSFORMERS, "tensorboard")
    assert record["params"] == {}  # nothing but TensorBoard was asked for
    assert record["metric_summaries"]["train/loss"]["count"] == 6
    assert record["command"]["metrics_from_files"][0]["path"].startswith("out/runs/")
