"""Values in MLflow's requests and answers: each field of a request checked (MLflow's
error codes when it is wrong), and lockstep's values written as MLflow's JSON spells them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from lockstep.errors import MlflowApiError

# MLflow's limits (log-batch, search pages), as its own server enforces them.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_TOTAL = 1000
MAX_SEARCH_RESULTS = 50_000
DEFAULT_SEARCH_RESULTS = 1000
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
DEFAULT_EXPERIMENT = "default"  # lockstep's; MLflow calls it "Default", id "0"
STATUS_OUT = {
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "crashed": "FAILED",
}
VIEW_TYPES = {
    "1": ("active",),
    "ACTIVE_ONLY": ("active",),
    "2": ("deleted",),
    "DELETED_ONLY": ("deleted",),
    "3": ("active", "deleted"),
    "ALL": ("active", "deleted"),
}
# The git facts MLflow's client sends as tags, and where lockstep keeps them.
SOURCE_TAGS = {
    "mlflow.source.git.commit": "commit",
    "mlflow.source.git.branch": "branch",
    "mlflow.source.git.repoURL": "remote",
    "mlflow.source.name": "source_name",
}


def missing(what: str) -> MlflowApiError:
    return MlflowApiError("RESOURCE_DOES_NOT_EXIST", what)


def invalid(what: str) -> MlflowApiError:
    return MlflowApiError("INVALID_PARAMETER_VALUE", what)


def field_text(
    body: Mapping[str, Any], field: str, *, required: bool = True, limit: int = 1000
) -> str:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{field}'.")
        return ""
    if isinstance(value, list) and len(value) == 1:  # a GET's query parameter
        value = value[0]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise invalid(f"Invalid value for parameter '{field}': must be a string")
    text = str(value)
    if len(text) > limit or "\x00" in text:
        raise invalid(f"Invalid value for parameter '{field}': at most {limit} characters")
    return text


def field_int(body: Mapping[str, Any], field: str, default: int | None = None) -> int | None:
    value = body.get(field)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(
            f"Invalid value {str(value)[:40]!r} for parameter '{field}': an integer"
        ) from None
    if not -(2**63) <= number < 2**63:
        raise invalid(f"Invalid value for parameter '{field}': out of the 64-bit range")
    return number


def field_float(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise invalid(f"Invalid value {value!r} for parameter '{field}': a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value {value!r} for parameter '{field}': a number") from None


def field_list(body: Mapping[str, Any], field: str) -> list[Any]:
    value = body.get(field) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise invalid(f"Invalid value for parameter '{field}': a list")
    return value


def checked_key(value: Any, field: str, limit: int = 250) -> str:
    """A metric, param or tag key: MLflow's character set (letters, digits, _ - . space /)."""
    if not isinstance(value, str) or not value:
        raise invalid(f"Invalid value for parameter '{field}': a non-empty string")
    if len(value) > limit:
        raise invalid(f"'{field}' {value[:40]!r}... is longer than {limit} characters")
    if not re.fullmatch(r"[\w\-. /:]+", value) or value.startswith("/") or ".." in value.split("/"):
        raise invalid(
            f"Invalid {field} {value!r}: names may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"
        )
    return value


def key_values(items: Any, field: str) -> dict[str, str]:
    """MLflow's [{key, value}] lists as a dict, each checked."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise invalid(f"Invalid value for parameter '{field}': a list of {{key, value}}")
    found: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise invalid(f"Invalid value for parameter '{field}': a list of {{key, value}}")
        key = checked_key(item.get("key"), f"{field}.key")
        value = item.get("value", "")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise invalid(f"Invalid value for {field} {key!r}: a string")
        text = str(value)
        if len(text) > MAX_TAG_LENGTH or "\x00" in text:
            raise invalid(f"{field} {key!r} is longer than {MAX_TAG_LENGTH} characters")
        found[key] = text
    return found


def page_start(token: Any) -> int:
    """Where a page starts, from the token the previous page gave (a count of rows)."""
    if token is None or token == "":
        return 0
    if not isinstance(token, str) or not token.isdigit() or len(token) > 12:
        raise invalid(f"Invalid page token {str(token)[:40]!r}; start again without it")
    return int(token)


def millis(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def json_number(value: float) -> float | str:
    """A metric value as MLflow's JSON spells the ones JSON cannot hold."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def param_text(value: Any) -> str:
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float) or value is None:
        return str(value)
    return json.dumps(value)


def search_scope(body: Mapping[str, Any], view_field: str) -> tuple[tuple[str, ...], int]:
    """The lifecycle stages a search covers (view_field: MLflow's ACTIVE_ONLY,
    DELETED_ONLY or ALL) and its max_results (MLflow's default and limit)."""
    stages = VIEW_TYPES.get(str(body.get(view_field) or "ACTIVE_ONLY"))
    if stages is None:
        raise invalid(f"Invalid {view_field} {body.get(view_field)!r}")
    limit = field_int(body, "max_results", DEFAULT_SEARCH_RESULTS) or DEFAULT_SEARCH_RESULTS
    if not 0 < limit <= MAX_SEARCH_RESULTS:
        raise invalid(
            f"Invalid value {limit} for parameter 'max_results' supplied. It must be at most "
            f"{MAX_SEARCH_RESULTS}"
        )
    return stages, limit
