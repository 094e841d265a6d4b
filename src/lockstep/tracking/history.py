"""A metric series read back from the store, as NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from lockstep.meta.shapes import StoredChunks


@dataclass(frozen=True)
class MetricHistory:
    """Every point of one metric of one run: ``steps``, ``values`` and unix ``times``."""

    key: str
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @classmethod
    def from_chunks(cls, key: str, chunks: StoredChunks) -> MetricHistory:
        import numpy as np

        def join(parts: list[bytes], dtype: str) -> Any:
            # One copy: concatenate the raw bytes, then view them as an array.
            return np.frombuffer(b"".join(parts), dtype=dtype).copy()

        return cls(
            key=key,
            steps=join(chunks.steps, "<i8"),
            values=join(chunks.values, "<f8"),
            times=join(chunks.times, "<f8"),
        )

    def to_json(self) -> dict[str, Any]:
        import math

        return {
            "key": self.key,
            "steps": self.steps.tolist(),
            "values": [v if math.isfinite(v) else str(v) for v in self.values.tolist()],
            "times": self.times.tolist(),
        }


def history_reader(meta: Any) -> Any:
    """``(run_id, key) -> MetricHistory`` over a metadata store, for comparisons."""

    def read(run_id: str, key: str) -> MetricHistory:
        return MetricHistory.from_chunks(key, meta.metric_chunks(run_id, key))

    return read
