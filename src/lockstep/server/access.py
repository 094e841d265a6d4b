"""Who may do what on a server: projects, and bearer tokens kept only as hashes.

Tokens are 256 random bits, so a fast hash (SHA-256) is enough to keep them: nobody can
guess one from its hash, and checking a request costs microseconds, not the
hundreds of milliseconds a password hash would add to every metric batch.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from lockstep.core import validate
from lockstep.errors import ProjectNotFound, TokenNotFound, UsageError
from lockstep.meta import schema
from lockstep.meta.engine import insert_ignore, read_transaction, write_transaction

DEFAULT_PROJECT = "default"
# Each role may do what the ones before it may.
ROLES = ("read", "write", "admin")
_PREFIX = "lst_"


def role(value: str) -> str:
    if value not in ROLES:
        raise UsageError(f"role {value!r} is not one of {', '.join(ROLES)}")
    return value


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    """A token as the server keeps it (never the secret)."""

    id: str
    user: str
    project: str
    role: str
    created_at: float
    created_by: str
    revoked_at: float | None

    def allows(self, needed: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "user": self.user,
            "project": self.project,
            "role": self.role,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "revoked_at": self.revoked_at,
        }


def _token(row: sa.Row[tuple[object, ...]]) -> Token:
    m = row._mapping
    return Token(
        id=str(m["id"]),
        user=str(m["user"]),
        project=str(m["project"]),
        role=str(m["role"]),
        created_at=float(m["created_at"]),
        created_by=str(m["created_by"]),
        revoked_at=None if m["revoked_at"] is None else float(m["revoked_at"]),
    )


class Access:
    """The projects and tokens of one server, in its own database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # projects ------------------------------------------------------------

    def projects(self) -> list[str]:
        with read_transaction(self.engine) as connection:
            names = connection.execute(sa.select(schema.server_projects.c.name)).scalars()
            return [DEFAULT_PROJECT, *sorted(str(n) for n in names if n != DEFAULT_PROJECT)]

    def has_project(self, name: str) -> bool:
        return name in self.projects()

    def require_project(self, name: str) -> str:
        if not self.has_project(name):
            raise ProjectNotFound(name)
        return name

    def create_project(self, name: str) -> bool:
        """Make a project; False when it already exists."""
        validate.project(name)
        if self.has_project(name):
            return False
        with write_transaction(self.engine) as connection:
            insert_ignore(
                connection,
                schema.server_projects,
                [{"name": name, "created_at": time.time()}],
                ("name",),
            )
        return True

    # tokens --------------------------------------------------------------

    def create_token(
        self, user: str, project: str, token_role: str, created_by: str
    ) -> tuple[Token, str]:
        """A new token; the secret is returned once and only its hash is kept."""
        validate.text(user, "user", limit=255)
        if not user:
            raise UsageError("a token needs a --user")
        self.require_project(project)
        secret = _PREFIX + secrets.token_urlsafe(32)
        token = Token(
            id=secrets.token_hex(6),
            user=user,
            project=project,
            role=role(token_role),
            created_at=time.time(),
            created_by=created_by[:255],
            revoked_at=None,
        )
        with write_transaction(self.engine) as connection:
            connection.execute(
                schema.server_tokens.insert().values(
                    secret_hash=_hash(secret),
                    **{k: v for k, v in token.to_json().items() if k != "revoked_at"},
                )
            )
        return token, secret

    def tokens(self, project: str | None = None) -> list[Token]:
        table = schema.server_tokens
        query = sa.select(table).order_by(table.c.created_at)
        if project is not None:
            query = query.where(table.c.project == project)
        with read_transaction(self.engine) as connection:
            return [_token(row) for row in connection.execute(query)]

    def revoke(self, token_id: str, project: str | None = None) -> Token:
        """Revoke a token (of that project only, when one is given); revoking twice is
        harmless."""
        table = schema.server_tokens
        match = table.c.id == str(token_id)[:16]
        if project is not None:
            match = match & (table.c.project == project)
        with write_transaction(self.engine) as connection:
            row = connection.execute(sa.select(table).where(match)).first()
            if row is None:
                raise TokenNotFound(str(token_id)[:16])
            if row._mapping["revoked_at"] is None:
                connection.execute(table.update().where(match).values(revoked_at=time.time()))
        return next(t for t in self.tokens(project) if t.id == token_id)

    def authenticate(self, secret: str) -> Token | None:
        """The live token with this secret, or None (unknown or revoked)."""
        if not secret.startswith(_PREFIX) or len(secret) > 128:
            return None
        table = schema.server_tokens
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                sa.select(table).where(table.c.secret_hash == _hash(secret))
            ).first()
        if row is None or row._mapping["revoked_at"] is not None:
            return None
        return _token(row)
