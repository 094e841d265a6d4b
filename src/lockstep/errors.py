"""Every error lockstep raises, in one tree.

    LockstepError
    ├── UsageError(ValueError)             bad input from the caller
    │   ├── InvalidFilter                  malformed filter or sort expression
    │   ├── InvalidRunRef                  a run reference that cannot be a run
    │   ├── InvalidMetric(TypeError)       a metric value that is not a number
    │   └── InvalidValue                   a path, digest, name or mode breaking its rule
    ├── RunNotFound(LookupError)           no run matches a reference
    │   └── AmbiguousRunRef                several runs match a prefix or a name
    ├── DatasetNotFound(LookupError)       no dataset or version matches a reference
    ├── ModelNotFound(LookupError)         no model, version or alias matches a reference
    ├── StoreError                         the store cannot be used as it is
    │   ├── StoreNotFound(FileNotFoundError)
    │   ├── StoreTooNew                    written by a newer lockstep
    │   ├── StoreNeedsMigration            older schema; run `lockstep migrate`
    │   ├── ObjectMissing(LookupError)     an object the store should hold is not there
    │   ├── ObjectCorrupt                  an object's bytes no longer match its digest
    │   ├── RemoteDocumentRefused          a remote's document fails validation
    │   ├── RemoteError                    a remote cannot be reached or used
    │   └── ServerUnreachable              a lockstep server does not answer
    ├── RunStateError(RuntimeError)        an operation the run's state forbids
    ├── PromotionRefused                   an alias move the model's run does not earn
    ├── MlflowApiError                     an MLflow API request refused, with MLflow's code
    └── RebuildError                       a run's code, data or environment cannot be rebuilt

Each message says what to do next. Context travels as attributes so callers
never parse messages.
"""

from __future__ import annotations

from collections.abc import Sequence


class LockstepError(Exception):
    """Root of every error lockstep raises on purpose."""


class UsageError(LockstepError, ValueError):
    """The caller gave input lockstep cannot accept."""


class InvalidFilter(UsageError):
    """A filter or sort expression does not parse."""

    def __init__(self, expression: str, column: int, problem: str) -> None:
        self.expression = expression
        self.column = column
        self.problem = problem
        # A window around the column: a filter can be thousands of characters long.
        start = max(0, column - 60)
        shown = expression[start : start + 120]
        prefix = "..." if start else ""
        suffix = "..." if start + 120 < len(expression) else ""
        pointer = " " * (len(prefix) + column - 1 - start) + "^"
        super().__init__(
            f"invalid filter at column {column}: {problem}\n  {prefix}{shown}{suffix}\n  {pointer}"
        )


class InvalidRunRef(UsageError):
    """A run reference that no run could ever match."""

    def __init__(self, ref: str, problem: str) -> None:
        self.ref = ref
        super().__init__(f"invalid run reference {ref!r}: {problem}")


class InvalidMetric(UsageError, TypeError):
    """A metric value that is not a real number."""

    def __init__(self, key: object, value: object) -> None:
        self.key = key
        self.value = value
        super().__init__(
            f"metric {key!r} must be a real number, got {type(value).__name__} {value!r}; "
            "log numbers only (convert tensors with .item())"
        )


class InvalidValue(UsageError):
    """A value from outside (a path, digest, name, mode) that breaks its rule."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(f"{field} {shown} is not valid: it must be {rule}")


class RunNotFound(LockstepError, LookupError):
    """No run matches the reference."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no run matches {ref!r}; list runs with `lockstep runs`")


class AmbiguousRunRef(RunNotFound):
    """Several runs match the reference."""

    def __init__(self, ref: str, candidates: Sequence[str]) -> None:
        self.candidates = list(candidates)
        LockstepError.__init__(
            self,
            f"{ref!r} matches {len(self.candidates)} runs ({', '.join(self.candidates[:5])}"
            f"{', ...' if len(self.candidates) > 5 else ''}); give more characters of the id",
        )
        self.ref = ref


class DatasetNotFound(LockstepError, LookupError):
    """No dataset or dataset version matches the reference."""

    def __init__(self, ref: str, hint: str = "") -> None:
        self.ref = ref
        super().__init__(
            f"no dataset version matches {ref!r}"
            + (f"; {hint}" if hint else "")
            + ("" if hint else "; list datasets with `lockstep data ls`")
        )


class ModelNotFound(LockstepError, LookupError):
    """No model, model version or alias matches the reference."""

    def __init__(self, ref: str, hint: str = "") -> None:
        self.ref = ref
        super().__init__(
            f"no model version matches {ref!r}; "
            + (hint or "list models with `lockstep models ls`")
        )


class StoreError(LockstepError):
    """The store cannot be used as it is."""


class StoreNotFound(StoreError, FileNotFoundError):
    """No lockstep store where one was expected."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no lockstep store at {path}; create one with `lockstep init`")


class StoreTooNew(StoreError):
    """The store was written by a newer lockstep than this one."""

    def __init__(self, location: str, schema: str, writer_version: str | None) -> None:
        self.location = location
        self.schema = schema
        self.writer_version = writer_version
        by = f"lockstep {writer_version}" if writer_version else "a newer lockstep"
        super().__init__(
            f"the store at {location} was written by {by} (schema {schema}); "
            "upgrade lockstep to use it: pip install -U lockstep"
        )


class StoreNeedsMigration(StoreError):
    """The store's schema is older than this lockstep's."""

    def __init__(self, location: str, current: str | None, head: str) -> None:
        self.location = location
        self.current = current
        self.head = head
        super().__init__(
            f"the store at {location} has schema {current or 'none'}, this lockstep needs {head}; "
            "back it up, then run `lockstep migrate`"
        )


class ObjectMissing(StoreError, LookupError):
    """An object named by a record is not in the object store."""

    def __init__(self, digest: str, what: str = "object") -> None:
        self.digest = digest
        self.what = what
        super().__init__(
            f"{what} (blake3 {digest}) is not in the object store; "
            "pull it from a remote or restore the file and record it again"
        )


class ObjectCorrupt(StoreError):
    """An object's bytes do not hash to its name."""

    def __init__(self, digest: str, actual: str) -> None:
        self.digest = digest
        self.actual = actual
        super().__init__(
            f"object {digest} is corrupt (its bytes hash to {actual[:16]}...); "
            "run `lockstep fsck`, then pull it from a remote or add the data again"
        )


class RemoteDocumentRefused(StoreError):
    """A document a remote serves breaks a rule; nothing of it is used."""

    def __init__(self, document: str, field: str, rule: str) -> None:
        self.document = document
        self.field = field
        self.rule = rule
        super().__init__(
            f"refused {document} from the remote: {field} must be {rule}; nothing was "
            "imported or written (the remote holds a damaged or hostile document: ask its "
            "owner, or remove that document from the remote)"
        )


class RemoteError(StoreError):
    """A remote cannot be reached or used (missing, unreachable, refusing, no bucket)."""


class ServerUnreachable(StoreError):
    """A lockstep server does not answer (down, or the network between is)."""


class AccessDenied(LockstepError):
    """A server's token may not do this (a read token writing, a non-admin managing
    tokens)."""


class NotAuthenticated(AccessDenied):
    """A server needs a token and the request had none it knows (absent, wrong, revoked)."""


class ProjectNotFound(LockstepError, LookupError):
    """A server project that does not exist, or that the token may not see."""

    def __init__(self, project: str) -> None:
        self.project = project
        super().__init__(
            f"no project {project!r} on this server (or not one this token may see); "
            "list yours with lockstep server project ls"
        )


class TokenNotFound(LockstepError, LookupError):
    """A token id that matches no token of the project."""

    def __init__(self, token_id: str) -> None:
        self.token_id = token_id
        super().__init__(f"no token {token_id!r}; list tokens with lockstep server token ls")


class RunStateError(LockstepError, RuntimeError):
    """The run's state does not allow the operation."""


class PromotionRefused(LockstepError):
    """An alias may only point at a version whose run meets the requirement."""

    def __init__(self, ref: str, alias: str, requirement: str, reason: str) -> None:
        self.ref = ref
        self.alias = alias
        self.requirement = requirement
        self.reason = reason
        super().__init__(f"refused to point {alias} at {ref} (requires {requirement}): {reason}")


class RebuildError(LockstepError):
    """A run's code, data or environment cannot be rebuilt here."""


class MlflowApiError(LockstepError):
    """An MLflow API request refused, with the error code MLflow's clients branch on."""

    STATUS = {
        "RESOURCE_DOES_NOT_EXIST": 404,
        "ENDPOINT_NOT_FOUND": 404,
        "INVALID_PARAMETER_VALUE": 400,
        "RESOURCE_ALREADY_EXISTS": 400,
        "INVALID_STATE": 400,
        "BAD_REQUEST": 400,
        "PERMISSION_DENIED": 403,
        "UNAUTHENTICATED": 401,
        "INTERNAL_ERROR": 500,
    }

    def __init__(self, error_code: str, message: str) -> None:
        self.error_code = error_code
        self.status = self.STATUS.get(error_code, 400)
        super().__init__(message)
