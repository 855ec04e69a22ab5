"""Engine commands: create, inspect, reduce, flatten and synchronize databases.

::

    commitdb init PATH [DSM_FILES...] [--flat] [--documentation TEXT]
    commitdb log PATH [--limit N]
    commitdb show PATH COMMIT
    commitdb get PATH ATTACHMENT KEY_UUID [--commit C] [--concept NS::Concept]
    commitdb reduce-heads PATH
    commitdb flatten PATH COMMIT TARGET_PATH
    commitdb sync LOCAL TARGET [--mode fetch|push|sync] [--loop [--interval S]] [--max-rounds N]
                               [--token T] [--ca CA.pem] [--cert CERT.pem] [--key KEY.pem]

A COMMIT is a hexadecimal id or a unique prefix of one, ``head`` (the only head) or ``last``
(the most recent commit). Errors (a missing path, an unknown commit, a bad URL, a definitions
conflict...) print one message on standard error and exit with status 1.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import string
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from commitdb.commit_database import CommitDatabase
from commitdb.commits import CommitHeader, CommitKind
from commitdb.database import Database
from commitdb.definitions import Definitions
from commitdb.dsm import load_definitions
from commitdb.errors import CommitDBError, DefinitionConflictError, DefinitionError
from commitdb.ids import CommitId
from commitdb.types import Attachment, ConceptType
from rpc.errors import RPCError

__all__ = (
    "flatten_command",
    "get_command",
    "init_command",
    "log_command",
    "reduce_heads_command",
    "resolve_commit",
    "show_command",
    "sync_command",
)


# --------------------------------------------------------------------------------------------
# Shared helpers


def _fail(message: str) -> click.exceptions.Exit:
    """Print `message` on standard error; the caller raises the result (exit status 1)."""
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(1)


def _short(commit_id: CommitId) -> str:
    return commit_id.hex()[:12] if commit_id.is_valid else "-"


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="milliseconds")


def _console(*, stderr: bool = False) -> Any:
    """A rich console; when not writing to a terminal, wide enough not to wrap rows."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = 240
    return console


@contextlib.contextmanager
def _open_commit_db(path: Path, *, readonly: bool = True) -> Iterator[CommitDatabase]:
    if not path.exists():
        raise _fail(f"{path}: no such database")
    if not CommitDatabase.is_compatible(path):
        kind = "a flat database" if Database.is_compatible(path) else "not a commitdb database"
        raise _fail(f"{path}: {kind}, not a commit database")
    try:
        db = CommitDatabase.open(path, readonly=readonly)
    except CommitDBError as exc:
        raise _fail(f"{path}: {exc}") from None
    try:
        yield db
    except CommitDBError as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()


def resolve_commit(db: Any, text: str) -> CommitId:
    """The commit a user names: a full id, a unique hexadecimal prefix, ``head`` or ``last``.

    Args:
        db: A commit database (local or remote).
        text: What the user typed.

    Returns:
        The commit id.

    Raises:
        click.exceptions.Exit: Unknown, ambiguous or malformed (the message is printed).
    """
    word = text.strip().lower()
    if word == "last":
        last = db.last_commit_id()
        if last is None:
            raise _fail("the database has no commits")
        return CommitId(last)
    if word == "head":
        heads = sorted(db.head_commit_ids(), key=bytes)
        if not heads:
            raise _fail("the database has no commits")
        if len(heads) > 1:
            listed = ", ".join(_short(h) for h in heads)
            raise _fail(
                f"'head' is ambiguous: {len(heads)} heads ({listed}); name one, or run reduce-heads"
            )
        return CommitId(heads[0])
    if not word or any(ch not in string.hexdigits for ch in word):
        raise _fail(f"{text!r} is not a commit: give a hexadecimal id or prefix, head or last")
    if len(word) == 64:
        cid = CommitId.from_hex(word)
        if not db.commit_exists(cid):
            raise _fail(f"unknown commit {word}")
        return cid
    matches = [c for c in db.commit_ids() if c.hex().startswith(word)]
    if not matches:
        raise _fail(f"unknown commit {text}")
    if len(matches) > 1:
        raise _fail(f"the prefix {text} is ambiguous ({len(matches)} commits); give more digits")
    return CommitId(matches[0])


def _load_dsm(files: tuple[Path, ...]) -> Definitions:
    sources: list[Path] = []
    for path in files:
        if path.is_dir():
            found = sorted(path.glob("*.dsm"))
            if not found:
                raise _fail(f"{path}: no .dsm files in this directory")
            sources.extend(found)
        else:
            sources.append(path)
    try:
        return load_definitions(sources)
    except DefinitionError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        name = exc.filename if exc.filename is not None else "?"
        raise _fail(f"{name}: cannot read file: {exc.strerror or exc}") from None


_PATH = click.Path(path_type=Path)


# --------------------------------------------------------------------------------------------
# init


@click.command(name="init")
@click.argument("path", type=_PATH)
@click.argument("dsm_files", nargs=-1, type=_PATH)
@click.option("--flat", is_flag=True, help="create a flat (non-versioned) database")
@click.option("--documentation", default="", help="a description stored in the database")
def init_command(path: Path, dsm_files: tuple[Path, ...], flat: bool, documentation: str) -> None:
    """Create a commit database (or a flat one) at PATH, typed by DSM_FILES.

    DSM_FILES are loaded together (a directory stands for its *.dsm files); with none, the
    database starts with empty definitions, which a sync or an extension fills in later.
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise _fail(f"{path} already exists")
    definitions = _load_dsm(dsm_files) if dsm_files else Definitions()
    factory: Any = Database if flat else CommitDatabase
    try:
        db = factory.create(path, definitions, documentation=documentation or None)
    except CommitDBError as exc:
        raise _fail(str(exc)) from None
    db.close()
    counts = definitions.counts()
    click.echo(
        f"created {'flat' if flat else 'commit'} database {path} "
        f"({counts['attachments']} attachments, {counts['concepts']} concepts, "
        f"{counts['structures']} structures)"
    )


# --------------------------------------------------------------------------------------------
# log and show


@click.command(name="log")
@click.argument("path", type=_PATH)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="only the last N commits")
def log_command(path: Path, limit: int | None) -> None:
    """Print the commit DAG of PATH in creation order (heads marked with *)."""
    from rich.table import Table
    from rich.text import Text

    with _open_commit_db(path) as db:
        order = db.commit_ids_in_order()
        heads = db.head_commit_ids()
        shown = order[-limit:] if limit else order
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for column in ("", "#", "commit", "kind", "label", "author", "time", "parent", "target"):
            table.add_column(column, no_wrap=column != "label")
        first = len(order) - len(shown)
        for i, cid in enumerate(shown, start=first):
            h = db.commit_header(cid)
            head = cid in heads
            table.add_row(
                Text("*", style="bold green") if head else Text(""),
                Text(str(i), style="dim"),
                Text(_short(cid), style="bold yellow" if head else "yellow"),
                Text(h.commit_type, style=_KIND_STYLES[h.kind]),
                Text(h.label),
                Text(h.author, style="cyan"),
                Text(_when(h.timestamp), style="dim"),
                Text(_short(h.parent_commit_id)),
                Text(_short(h.target_commit_id)),
            )
        console = _console()
        if shown:
            console.print(table)
        console.print(
            Text(
                f"{len(order)} commit{'' if len(order) == 1 else 's'}, "
                f"{len(heads)} head{'' if len(heads) == 1 else 's'}",
                style="bold",
            )
        )


_KIND_STYLES = {
    CommitKind.MUTATIONS: "",
    CommitKind.MERGE: "magenta",
    CommitKind.DISABLE: "red",
    CommitKind.ENABLE: "green",
}


@click.command(name="show")
@click.argument("path", type=_PATH)
@click.argument("commit")
def show_command(path: Path, commit: str) -> None:
    """Print the header of COMMIT and its opcodes, one per line, under their document."""
    from rich.text import Text

    from commitdb.opcodes import decode_program, split_address

    with _open_commit_db(path) as db:
        cid = resolve_commit(db, commit)
        data = db.commit_data(cid)
        h: CommitHeader = data.header
        defs = db.definitions()
        console = _console()
        rows = [
            ("commit", cid.hex()),
            ("kind", h.commit_type),
            ("label", h.label),
            ("author", h.author),
            ("time", _when(h.timestamp)),
            ("parent", h.parent_commit_id.hex() if h.parent_commit_id.is_valid else "-"),
            ("target", h.target_commit_id.hex() if h.target_commit_id.is_valid else "-"),
            ("head", "yes" if cid in db.head_commit_ids() else "no"),
        ]
        for name, value in rows:
            console.print(Text(f"{name:<7}", style="bold") + Text(value))
        if h.kind != CommitKind.MUTATIONS:
            return
        program = decode_program(data.program, defs)
        docs = list(program.items())
        count = sum(len(ops) for _, ops in docs)
        console.print(
            Text(
                f"{len(docs)} document{'' if len(docs) == 1 else 's'}, "
                f"{count} opcode{'' if count == 1 else 's'}",
                style="bold",
            )
        )
        for address, ops in docs:
            att, key = split_address(address, defs)
            console.print(
                Text(att.identifier, style="cyan")
                + Text(f" {key.concept.qualified_name} {key.id}", style="dim")
            )
            for op in ops:
                console.print(Text("  " + op.describe()))


# --------------------------------------------------------------------------------------------
# get


def _attachment(defs: Definitions, name: str) -> Attachment:
    found = defs.query_attachment(name)
    if found is None:
        known = ", ".join(sorted(a.identifier for a in defs.attachments())) or "none"
        raise _fail(f"unknown attachment {name!r} (attachments: {known})")
    return found


def _concept(defs: Definitions, att: Attachment, name: str | None) -> ConceptType:
    if name is None:
        target = att.key_type.target
        if not isinstance(target, ConceptType):
            raise _fail(f"{att.identifier} is keyed by {target}: give --concept NS::Concept")
        return target
    concept = defs.query_type(name)
    if not isinstance(concept, ConceptType):
        raise _fail(f"unknown concept {name!r}")
    if not att.key_type.accepts_concept(concept):
        raise _fail(f"{att.identifier} takes no key of {concept.qualified_name}")
    return concept


@click.command(name="get")
@click.argument("path", type=_PATH)
@click.argument("attachment")
@click.argument("key_uuid")
@click.option("--commit", "commit", help="the commit to read at (default: last)")
@click.option(
    "--concept", help="the key's concrete concept NS::Concept (default: the attachment's)"
)
def get_command(
    path: Path, attachment: str, key_uuid: str, commit: str | None, concept: str | None
) -> None:
    """Print the document of ATTACHMENT for KEY_UUID as JSON.

    PATH is a commit database (read at --commit, default ``last``) or a flat database.
    ATTACHMENT is ``NS::Concept.name`` (or ``NS::name`` when unique).
    """
    import uuid

    from commitdb.values import Key
    from rpc.jsonvalues import dumps

    try:
        instance = uuid.UUID(key_uuid)
    except ValueError:
        raise _fail(f"{key_uuid!r} is not a uuid") from None
    if path.exists() and Database.is_compatible(path):
        if commit is not None:
            raise _fail("--commit applies to commit databases; this one is flat")
        try:
            with Database.open(path, readonly=True) as flat:
                defs = flat.definitions()
                att = _attachment(defs, attachment)
                key = Key(_concept(defs, att, concept), instance)
                doc = flat.get(att, key)
        except CommitDBError as exc:
            raise _fail(str(exc)) from None
        where = ""
    else:
        with _open_commit_db(path) as db:
            defs = db.definitions()
            att = _attachment(defs, attachment)
            key = Key(_concept(defs, att, concept), instance)
            cid = resolve_commit(db, commit or "last")
            doc = db.state(cid).get(att, key)
            where = f" at commit {_short(cid)}"
    if doc is None:
        raise _fail(f"no document {att.identifier} {key.concept.qualified_name} {instance}{where}")
    click.echo(dumps(doc))


# --------------------------------------------------------------------------------------------
# reduce-heads and flatten


@click.command(name="reduce-heads")
@click.argument("path", type=_PATH)
@click.option("--author", help="the author of the merges (default: the current user)")
def reduce_heads_command(path: Path, author: str | None) -> None:
    """Fold every head of PATH into the last commit with merges (ascending id order)."""
    with _open_commit_db(path, readonly=False) as db:
        heads = db.head_commit_ids()
        merged = db.reduce_heads(author=author)
        if merged is None:
            click.echo(f"nothing to reduce: {len(heads)} head{'' if len(heads) == 1 else 's'}")
            return
        click.echo(f"reduced {len(heads)} heads into {merged.hex()}")


@click.command(name="flatten")
@click.argument("path", type=_PATH)
@click.argument("commit")
@click.argument("target_path", type=_PATH)
@click.option("--label", default="flatten", show_default=True, help="the label of the commit")
def flatten_command(path: Path, commit: str, target_path: Path, label: str) -> None:
    """Write the state at COMMIT as the single commit of a new database TARGET_PATH.

    Only the blobs that state references are copied; the history is not.
    """
    if target_path.exists() and (not target_path.is_dir() or any(target_path.iterdir())):
        raise _fail(f"{target_path} already exists")
    with _open_commit_db(path) as db:
        cid = resolve_commit(db, commit)
        flat = db.flatten(cid, target_path, label)
        try:
            head = flat.last_commit_id()
            blobs = len(flat.blob_ids())
        finally:
            flat.close()
    assert head is not None
    click.echo(
        f"flattened {_short(cid)} into {target_path}: commit {head.hex()}, "
        f"{blobs} blob{'' if blobs == 1 else 's'}"
    )


# --------------------------------------------------------------------------------------------
# sync


def _split_target(target: str) -> tuple[str, str] | None:
    """``(url, name)`` for ``URL#name``; None for a local path."""
    if "://" not in target:
        return None
    url, sep, name = target.rpartition("#")
    if not sep or not name or not url:
        raise _fail(f"{target!r}: a remote TARGET is URL#NAME (e.g. tcp://127.0.0.1:54321#main)")
    from rpc.transports import parse_endpoint

    try:
        parse_endpoint(url)
    except ValueError as exc:
        raise _fail(f"bad URL: {exc}") from None
    return url, name


class _Progress:
    """A rich progress bar per stage, on standard error, shown only on a terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = _console(stderr=True)
        self.enabled = bool(console.is_terminal)
        self._progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.enabled,
            transient=True,
        )
        self._tasks: dict[str, Any] = {}

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        """Show the bars while the block runs (one round); erase them afterwards."""
        self._progress.start()
        try:
            yield
        finally:
            for task in self._tasks.values():
                self._progress.remove_task(task)
            self._tasks.clear()
            self._progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        amount = f"{_bytes(done)}/{_bytes(total)}" if stage.endswith("blobs") else f"{done}/{total}"
        task = self._tasks.get(stage)
        if task is None:
            task = self._progress.add_task(stage, total=max(total, 1), amount=amount)
            self._tasks[stage] = task
        self._progress.update(task, completed=done, total=max(total, 1), amount=amount)


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class _StopFlag:
    """Set by SIGINT or SIGTERM while installed; the loop finishes its round, then stops."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():  # a second signal: stop now
            raise KeyboardInterrupt
        click.echo(f"received {signal.Signals(signum).name}, stopping after this round", err=True)
        self.event.set()


_LOST = (ConnectionError, OSError, TimeoutError, RPCError)


@click.command(name="sync")
@click.argument("local", type=_PATH)
@click.argument("target")
@click.option(
    "--mode",
    type=click.Choice(["fetch", "push", "sync"], case_sensitive=False),
    default="sync",
    show_default=True,
    help="fetch: TARGET -> LOCAL; push: LOCAL -> TARGET; sync: both",
)
@click.option("--loop", is_flag=True, help="repeat until SIGINT/SIGTERM (or --max-rounds)")
@click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="seconds between rounds with --loop",
)
@click.option(
    "--max-rounds", type=click.IntRange(min=1), help="stop after N rounds (implies --loop)"
)
@click.option(
    "--pack-size",
    type=click.FloatRange(min=0.001),
    default=25.0,
    show_default=True,
    help="megabytes of blob data per transfer",
)
@click.option("--token", help="credentials for a server started with --token")
@click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate (PEM) to trust for a tls:// TARGET (default: the system store)",
)
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False),
    help="client certificate (PEM), for a server started with --client-ca",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False),
    help="the client certificate's private key (PEM; default: in --cert)",
)
def sync_command(
    local: Path,
    target: str,
    mode: str,
    loop: bool,
    interval: float,
    max_rounds: int | None,
    pack_size: float,
    token: str | None,
    ca: str | None,
    cert: str | None,
    key: str | None,
) -> None:
    """Synchronize the commit database LOCAL with TARGET.

    TARGET is another local path or a served database, URL#NAME (tcp://host:port#name,
    unix:///path.sock#name, tls://...). Commits move with the blobs they reference; orphan
    blobs stay; divergent heads are kept (see reduce-heads). Each round prints what moved.

    With --loop, a round that fails (a lost connection, a refused write) is reported and
    the next round tries again, reconnecting if needed; the exit status is 1 if the last
    round failed. A definitions conflict always stops at once.

    A TLS TARGET (tls://, unix+tls://) is verified with --ca (or the system store); --cert
    and --key present a client certificate to a server that requires one.
    """
    from commitdb.sync import CommitSynchronizer

    remote = _split_target(target)
    if key is not None and cert is None:
        raise _fail("--key needs --cert")
    if (ca or cert) and (remote is None or not _is_tls(remote[0])):
        raise _fail("--ca, --cert and --key apply to a tls:// or unix+tls:// TARGET only")
    if remote is None and Path(target).resolve() == local.resolve():
        raise _fail("LOCAL and TARGET are the same database")
    loop = loop or max_rounds is not None
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(_open_commit_db(local, readonly=False))
        if remote is None:
            other: Any = stack.enter_context(_open_commit_db(Path(target), readonly=False))
            connect: Callable[[contextlib.ExitStack], Any] | None = None
        else:
            connect = _connector(remote[0], remote[1], token, (ca, cert, key))
            other = None
        progress = _Progress()
        stop = stack.enter_context(_StopFlag()) if loop else None
        synchronizer: CommitSynchronizer | None = None
        session: contextlib.ExitStack | None = None
        rounds = 0
        failed = False
        while True:
            rounds += 1
            failed = False
            prefix = f"round {rounds}: " if loop else ""
            try:
                if connect is not None and session is None:
                    session = contextlib.ExitStack()
                    other = connect(session)
                    synchronizer = None
                if synchronizer is None:
                    synchronizer = CommitSynchronizer(
                        other,
                        db,
                        mode,
                        pack_size=int(pack_size * 1_000_000),
                        progress=progress,
                    )
                with progress.showing():
                    info = synchronizer.sync()
                click.echo(prefix + info.summary())
            except DefinitionConflictError as exc:
                raise _fail(f"definitions conflict: {exc}") from None
            except (*_LOST, CommitDBError, _CannotOpen) as exc:
                # a lost connection is opened again next round; the pass resumes
                if session is not None:
                    _close_quietly(session)
                    session = None
                if not loop:
                    raise _fail(_describe(exc)) from None
                click.echo(f"{prefix}failed: {_describe(exc)}", err=True)
                failed = True
            if not loop or (max_rounds is not None and rounds >= max_rounds):
                break
            assert stop is not None
            if stop.event.wait(interval) or stop.event.is_set():
                break
        if session is not None:
            _close_quietly(session)
    if failed:
        raise click.exceptions.Exit(1)  # the last round failed (its message is printed)


class _CannotOpen(Exception):
    """The remote database could not be opened (the message says why)."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, CommitDBError | _CannotOpen):
        return text
    return f"{type(exc).__name__}: {text}"


def _close_quietly(session: contextlib.ExitStack) -> None:
    try:
        session.close()
    except Exception as exc:  # the connection is gone already; nothing left to release
        click.echo(f"note: closing the connection: {_describe(exc)}", err=True)


def _is_tls(url: str) -> bool:
    from rpc.transports import parse_endpoint

    return parse_endpoint(url).tls


def _connector(
    url: str,
    name: str,
    token: str | None,
    tls: tuple[str | None, str | None, str | None] = (None, None, None),
) -> Callable[[contextlib.ExitStack], Any]:
    """Opens the remote database in a session stack (raises _CannotOpen); `tls` is the
    (CA, client certificate, key) files of a TLS URL."""
    ssl_context = None
    if _is_tls(url):
        from rpc.transports import client_ssl_context

        try:
            ssl_context = client_ssl_context(*tls)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise _fail(f"cannot load the TLS files: {_describe(exc)}") from None

    def connect(session: contextlib.ExitStack) -> Any:
        from rpc.db_remote import CommitDatabaseRemote

        kwargs: dict[str, Any] = {"connect_timeout": 10.0}
        if token is not None:
            kwargs["credentials"] = token
        if ssl_context is not None:
            kwargs["ssl_context"] = ssl_context
        try:
            return session.enter_context(CommitDatabaseRemote.connect(url, name, **kwargs))
        except _LOST as exc:
            session.close()
            raise _CannotOpen(f"cannot open {url}#{name}: {_describe(exc)}") from None

    return connect
