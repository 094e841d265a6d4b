"""Everything a run took as input, as one value: the thing a rerun rebuilds and runs.

A recipe comes from a run's record; ``explain`` builds hybrids by taking single
factors from another run's recipe. Its digest names it, so the same recipe is
never run twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lockstep.core.canonical import digest_json
from lockstep.core.records import RunRecord
from lockstep.errors import UsageError

# The factors explain can swap between two runs, in the order it tries them.
FACTORS = ("code", "data", "params", "seed", "environment")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    code: dict[str, Any]  # the run's code section
    inputs: tuple[tuple[str, str], ...]  # (project path, digest), sorted
    argv: tuple[str, ...]
    cwd: str  # relative to the project root
    # Where the project root sits inside the code root (git repository), "." when equal.
    project_offset: str = "."
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    deterministic: bool = False
    variables: dict[str, str] = field(default_factory=dict)  # allowlisted, user-set
    # The original's SOURCE_DATE_EPOCH, so tools that embed a date write the same bytes.
    # Not a factor: every run has its own, and it only reaches dates written into files.
    source_date_epoch: str | None = None
    project_root: str | None = None  # the original's, recorded again by its reproductions
    # Command-line values redacted at capture (secrets): (argv index, name), filled at rerun.
    redacted: tuple[tuple[int, str], ...] = ()
    # Secret files the run read (never stored): a rerun copies them from the project.
    secret_files: tuple[str, ...] = ()
    # Metrics were read from the printed output (and with this user pattern, if any):
    # the rerun reads its output the same way, so verify compares like with like.
    metrics_from_output: bool = False
    metrics_pattern: str | None = None
    metrics_from_files: bool = False  # the original's CSV metric logs were read

    @classmethod
    def from_record(cls, record: RunRecord) -> Recipe:
        sections = record.sections
        command = sections.get("command")
        if not isinstance(command, dict) or not command.get("argv"):
            raise UsageError(
                f"run {record.name} was not recorded by `lockstep run`, so it cannot be rerun; "
                "record it with `lockstep run -- COMMAND`"
            )
        code = sections.get("code")
        if not isinstance(code, dict) or "kind" not in code:
            reason = (code or {}).get("unavailable", "not recorded")
            raise UsageError(f"run {record.name} has no usable code snapshot ({reason})")
        seed = sections.get("seed", {})
        determinism = sections.get("determinism", {})
        environment = sections.get("environment", {})
        printed = command.get("metrics_from_output")  # what --metrics-from-output read
        offset = "."
        if code.get("root") and command.get("project_root"):
            from pathlib import Path

            try:
                offset = Path(command["project_root"]).relative_to(code["root"]).as_posix()
            except ValueError:
                offset = "."
        return cls(
            code=code,
            project_offset=offset or ".",
            inputs=tuple(sorted((a.path, a.digest) for a in record.inputs())),
            argv=tuple(command["argv"]),
            cwd=command.get("cwd", "."),
            params=dict(record.params),
            seed=int(seed.get("value", 0)),
            deterministic=bool(determinism.get("requested", False)),
            variables={
                k: v for k, v in environment.get("variables", {}).items() if k != "PYTHONHASHSEED"
            },
            source_date_epoch=command.get("source_date_epoch"),
            project_root=command.get("project_root"),
            redacted=tuple(
                (int(r["index"]), str(r["name"]))
                for r in command.get("redacted", [])
                if isinstance(r, dict)
            ),
            secret_files=tuple(str(p) for p in sections.get("secret_files_skipped", [])),
            metrics_from_output=isinstance(printed, dict),
            metrics_pattern=printed.get("pattern") if isinstance(printed, dict) else None,
            metrics_from_files=bool(command.get("metrics_from_files")),
        )

    def command_for(self, environ: Mapping[str, str]) -> tuple[str, ...]:
        """The command to run: redacted secrets filled in from LOCKSTEP_SECRET_<NAME>."""
        from lockstep.capture.secrets import REDACTED, secret_variable

        argv = list(self.argv)
        for index, name in self.redacted:
            variable = secret_variable(name)
            value = environ.get(variable)
            if value is None:
                raise UsageError(
                    f"the recorded command's {name} value was redacted (lockstep never stores "
                    f"secrets); set {variable} to give it to the rerun"
                )
            if not 0 <= index < len(argv):
                continue
            here = argv[index]
            argv[index] = here[: -len(REDACTED)] + value if here.endswith(REDACTED) else value
        return tuple(argv)

    def code_identity(self) -> dict[str, Any]:
        """What makes two code snapshots the same code (not where they were taken)."""
        from lockstep.tracking.snapshot import code_identity

        return code_identity(self.code)

    def factor(self, name: str) -> Any:
        """The value of one factor, comparable between recipes."""
        if name == "code":
            return self.code_identity()
        if name == "data":
            return self.inputs
        if name == "params":
            return {"argv": self.argv, "cwd": self.cwd, "params": self.params}
        if name == "seed":
            return self.seed
        if name == "environment":
            return {"variables": self.variables, "deterministic": self.deterministic}
        raise ValueError(name)

    def with_factor(self, name: str, other: Recipe) -> Recipe:
        """This recipe with one factor taken from other."""
        if name == "code":
            return replace(self, code=other.code)
        if name == "data":
            return replace(self, inputs=other.inputs)
        if name == "params":
            return replace(self, argv=other.argv, cwd=other.cwd, params=other.params)
        if name == "seed":
            return replace(self, seed=other.seed)
        if name == "environment":
            return replace(self, variables=other.variables, deterministic=other.deterministic)
        raise ValueError(name)

    def differing(self, other: Recipe) -> list[str]:
        return [f for f in FACTORS if self.factor(f) != other.factor(f)]

    def digest(self) -> str:
        """Names the recipe: equal digests run the same thing."""
        data = asdict(self)
        data["code"] = self.code_identity()
        data.pop("project_root")  # where the original ran does not change what a rerun runs
        if not self.metrics_from_output:  # digests of recipes from before the option stay
            data.pop("metrics_from_output")
            data.pop("metrics_pattern")
        if not self.metrics_from_files:
            data.pop("metrics_from_files")
        return digest_json(data)
