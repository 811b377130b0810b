"""Connecting to the ledger without ever leaking its password.

psycopg's own errors are precise but they may echo parts of the connection string (a malformed
DSN is quoted back verbatim), and a traceback or a Dagster failure event is stored and shown to
people who must not see the ledger password. Every connect therefore goes through `connect`, which
turns psycopg's connection errors into `LedgerConnectionError` with the password removed.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import conninfo

DEFAULT_CONNECT_TIMEOUT_S = 10
"""A wrong host must fail in seconds, not after the OS's TCP timeout (minutes)."""

READ_ONLY_OPTION = "-c default_transaction_read_only=on"
"""Sent in the startup packet of every session that only reads the ledger: the server itself then
refuses any write in it (`cannot execute ... in a read-only transaction`), whatever a bug in our
code or a role with too many grants would allow. The ledger is the company's book of record."""

_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)", re.I
)
_KW_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&\s]*)", re.I)
REDACTED = "********"


class LedgerConnectionError(RuntimeError):
    """The ledger database could not be reached or refused us; the message never holds a password."""


def _passwords_in(dsn: str) -> list[str]:
    try:
        pw = conninfo.conninfo_to_dict(dsn).get("password")
    except Exception:  # a malformed DSN: fall back to the patterns below
        return []
    return [str(pw)] if pw else []


def redact(text: str, dsn: str | None = None) -> str:
    """Remove passwords from `text` (a DSN, or a message that may quote one).

    Pattern-based removal covers URL (`user:pw@`), keyword (`password=...`) and query-string forms;
    when `dsn` is given, its parsed password is also removed wherever it appears verbatim.
    """
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['at']}", text)
    out = _KW_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}", out)
    out = _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}", out)
    for pw in _passwords_in(dsn) if dsn else []:
        if len(pw) >= 1:
            out = out.replace(pw, REDACTED)
    return out


def describe_dsn(dsn: str) -> str:
    """`user@host:port/dbname` for messages and logs: enough to find the server, no secret."""
    try:
        d = conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "<unparseable DSN>"
    host = d.get("host") or d.get("hostaddr") or "<default host>"
    return f"{d.get('user') or '<default user>'}@{host}:{d.get('port') or 5432}/{d.get('dbname') or '<default db>'}"


def connect(
    dsn: str, *, autocommit: bool = False, read_only: bool = False, **kwargs: Any
) -> psycopg.Connection:
    """Open a psycopg connection to the ledger, or raise `LedgerConnectionError` (redacted, on
    one line: a CLI prints it as it is).

    A connect timeout is set unless the DSN or the caller chose one. `read_only` opens a session
    whose every transaction is read-only (`READ_ONLY_OPTION`, after the DSN's own `options`):
    every read of a ledger recon does not own goes through it.
    """
    try:
        in_dsn = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        in_dsn = {}
    if "connect_timeout" not in kwargs and "connect_timeout" not in in_dsn:
        kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    if read_only:
        own = str(kwargs.get("options") or in_dsn.get("options") or "")
        kwargs["options"] = f"{own} {READ_ONLY_OPTION}".strip()
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **kwargs)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        # `from None`: the original exception's text is what we are redacting; chaining it would
        # print it again in every traceback. libpq's message spans lines ("Is the server
        # running ...?"): folded into one.
        reason = " ".join(redact(str(exc), dsn).split())
        raise LedgerConnectionError(
            f"cannot connect to the ledger database {describe_dsn(dsn)}: {reason}"
        ) from None


def check_readable_ledger(dsn: str) -> None:
    """A ledger recon does not own, checked in a read-only session before any run: unreachable
    or without the ledger's table, the command stops with one line, and nothing is created."""
    with connect(dsn, read_only=True, autocommit=True) as conn:
        (table,) = conn.execute("SELECT to_regclass('ledger_entries')").fetchone()  # type: ignore[misc]
    if table is None:
        raise LedgerConnectionError(
            f"the ledger database {describe_dsn(dsn)} has no ledger_entries table; recon never "
            "creates or seeds a ledger it does not own (to make a dev ledger: recon seed --dsn)"
        )
