"""`livecore serve | migrate | user | stream | ledger | prometheus-token`: the operator's
command line.

Commands that print something take `--json` for scripts. A configuration error exits 2
with one line naming the key; nothing here prints a traceback for an operator's mistake.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from livecore.config import Config, ConfigError
from livecore.configload import load_config
from livecore.logs import configure_logging
from livecore.processes.child import Supervised
from livecore.store.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_FAILED = 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"livecore: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log_format = getattr(args, "log_format", None) or config.log_format
    supervised: Supervised | None = getattr(args, "supervised", None)
    configure_logging(config.log_level, log_format, tag=_log_tag(config, args, supervised))
    handler: Callable[[Config, argparse.Namespace], int] = args.handler
    try:
        return handler(config, args)
    except CommandError as exc:
        print(f"livecore: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


class CommandError(Exception):
    """An operator-facing failure: printed as one line, exit 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecore", description="livecore streaming server")
    parser.add_argument("--config", type=Path, help="TOML file layered over configs/livecore.toml")
    parser.set_defaults(command=None)
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the server")
    # Also accepted after `serve`, so that `bin/run --config FILE` works.
    serve.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    serve.add_argument("--log-format", choices=("text", "json"))
    serve.add_argument(
        "--processes", type=_process_count, metavar="N",
        help="processes serving the port together, each a node (default: the processes key, 1)",
    )  # fmt: skip
    # Given by the parent of several processes to each of them (livecore/processes/child.py).
    serve.add_argument("--supervised", type=Supervised.parse, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.add_argument("--json", action="store_true")
    migrate.set_defaults(handler=_migrate)

    user = sub.add_parser("user", help="manage accounts").add_subparsers(
        dest="user_command", required=True
    )
    create = user.add_parser("create", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=("viewer", "creator", "admin"), default="viewer")
    create.add_argument("--display-name")
    create.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input (otherwise one is generated and printed)",
    )  # fmt: skip
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_user_create)
    tfa_off = user.add_parser(
        "2fa-off", help="turn off an account's two-factor authentication (phone and recovery "
        "codes lost; check who is asking first)",
    )  # fmt: skip
    tfa_off.add_argument("email")
    tfa_off.set_defaults(handler=_user_2fa_off)

    stream = sub.add_parser("stream", help="manage streams").add_subparsers(
        dest="stream_command", required=True
    )
    screate = stream.add_parser("create", help="create a stream and print its key")
    screate.add_argument("--owner", required=True, help="the owner's email")
    screate.add_argument("--slug", required=True)
    screate.add_argument("--title", default="")
    screate.add_argument("--visibility", choices=("public", "subscribers"), default="public")
    screate.add_argument("--json", action="store_true")
    screate.set_defaults(handler=_stream_create)
    rotate = stream.add_parser(
        "rotate-key", help="replace a stream's key, end its live session, print the new key"
    )
    rotate.add_argument("slug")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(handler=_stream_rotate)

    ledger = sub.add_parser("ledger", help="the money ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    check = ledger.add_parser(
        "check", help="prove the ledger's invariants from its entries (exit 1 when broken)"
    )
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_ledger_check)

    token = sub.add_parser(
        "prometheus-token", help="print the bearer token of /metrics/targets (Prometheus)"
    )
    token.set_defaults(handler=_prometheus_token)
    return parser


def _process_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError("must be from 1 to 64")
    return count


# -- database for one-shot commands -------------------------------------------------------


@contextlib.contextmanager
def _database_url(
    config: Config, *, announce: bool = False
) -> Iterator[tuple[str, EmbeddedPostgres | None]]:
    """The configured database, or the embedded one, stopped again on exit if we started it.

    Only `serve` announces the embedded database's start and stop; a one-shot command's
    output is its answer (both are still logged at debug level).
    """
    if config.database_url:
        yield config.database_url, None
        return
    embedded = EmbeddedPostgres(config.data_path / "postgres", announce=announce)
    try:
        yield embedded.start(), embedded
    finally:
        embedded.stop()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    import uvloop

    return uvloop.run(coro)


# -- serve --------------------------------------------------------------------------------


def _log_tag(config: Config, args: argparse.Namespace, supervised: Supervised | None) -> str:
    """Which process of several wrote a log line: p1, p2, ... and "main" for their parent."""
    if supervised is not None:
        return f"p{supervised.index}"
    if args.command == "serve" and (args.processes or config.processes) > 1:
        return "main"
    return ""


def _serve(config: Config, args: argparse.Namespace) -> int:
    # A crash in native code (FFmpeg, libsrtp) still leaves a traceback in the log.
    faulthandler.enable()
    supervised: Supervised | None = args.supervised
    if supervised is None and args.processes is not None:
        try:
            config = dataclasses.replace(config, processes=args.processes)
        except ConfigError as exc:
            print(f"livecore: configuration error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    from livecore.serve import serve_many, serve_one

    with _database_url(config, announce=True) as (dsn, _):
        if supervised is None and config.processes > 1:
            return serve_many(config, dsn, config_path=args.config, log_format=args.log_format)
        return serve_one(config, dsn, supervised)


# -- one-shot commands --------------------------------------------------------------------


def _prometheus_token(config: Config, args: argparse.Namespace) -> int:
    from livecore.cluster.scrape_targets import discovery_token

    stored = config.data_path / "secret_key"  # made by the first `serve` without the setting
    if not config.secret_key and not stored.exists():
        raise CommandError("no secret key yet: set LIVECORE_SECRET_KEY or start serve once")
    print(discovery_token(config.secret_key.encode() or stored.read_bytes().strip()))
    return 0


def _migrate(config: Config, args: argparse.Namespace) -> int:
    from livecore.store import apply_migrations

    with _database_url(config) as (dsn, _):
        report = _run(apply_migrations(dsn))
    if args.json:
        print(json.dumps({"applied": list(report.applied), "already": report.already}))
    elif report.applied:
        print("applied: " + ", ".join(report.applied))
    else:
        print("nothing to apply")
    return 0


@contextlib.asynccontextmanager
async def _services(config: Config, dsn: str) -> AsyncIterator[Any]:
    from livecore.auth.mail import LogMailSender
    from livecore.auth.service import AuthService
    from livecore.store import Database, apply_migrations

    await apply_migrations(dsn)
    db = await Database.connect(dsn, max_size=2)
    auth = AuthService(db, config.auth, LogMailSender(), public_url=config.public_url)
    try:
        await auth.fill_name_keys()  # as serve does (quietly): names are compared with all
        yield auth, db
    finally:
        await auth.close()
        await db.close()


def _user_create(config: Config, args: argparse.Namespace) -> int:
    import secrets

    from livecore.auth.service import DisplayNameTaken, EmailTaken, InvalidInput

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password, generated = secrets.token_urlsafe(18), True
    display_name = args.display_name or args.email.split("@", 1)[0][:64]

    async def create() -> Any:
        async with _services(config, dsn) as (auth, _):
            return await auth.register(args.email, password, display_name, args.role)

    with _database_url(config) as (dsn, _):
        try:
            user = _run(create())
        except InvalidInput as exc:
            raise CommandError("; ".join(f"{k} {v}" for k, v in exc.fields.items())) from None
        except EmailTaken:
            raise CommandError(f"an account with email {args.email} exists already") from None
        except DisplayNameTaken:
            raise CommandError(
                f"another account is named {display_name!r}: give one with --display-name"
            ) from None
    out = {"id": user.id, "email": user.email, "role": user.role}
    if generated:
        out["password"] = password
    if args.json:
        print(json.dumps(out))
    else:
        print(f"created {user.role} {user.email} (id {user.id})")
        if generated:
            print(f"password (shown once): {password}")
    return 0


def _user_2fa_off(config: Config, args: argparse.Namespace) -> int:
    from livecore.store import Database, apply_migrations
    from livecore.store.audit import AuditLog
    from livecore.store.twofactor import TwoFactorSecrets
    from livecore.store.users import Users

    async def turn_off() -> bool:
        await apply_migrations(dsn)
        db = await Database.connect(dsn, max_size=2)
        try:
            user = await Users(db).by_email(args.email)
            if user is None:
                raise CommandError(f"no account with email {args.email}")
            if not await TwoFactorSecrets(db).disable(user.id):
                return False
            await AuditLog(db).record("user.2fa_reset", "user", user.id, details={"by": "cli"})
            return True
        finally:
            await db.close()

    with _database_url(config) as (dsn, _):
        done = _run(turn_off())
    print(f"two-factor authentication {'turned off' if done else 'was off'} for {args.email}")
    return 0


def _stream_create(config: Config, args: argparse.Namespace) -> int:
    from livecore.auth.service import InvalidInput
    from livecore.store.audit import AuditLog
    from livecore.store.streams import Streams
    from livecore.store.users import Users
    from livecore.streams.service import NotAllowed, SlugTaken, StreamService

    async def create() -> Any:
        async with _services(config, dsn) as (_, db):
            owner = await Users(db).by_email(args.owner)
            if owner is None:
                raise CommandError(f"no account with email {args.owner}")
            return await StreamService(Streams(db), AuditLog(db)).create(
                owner, args.slug, args.title, args.visibility
            )

    with _database_url(config) as (dsn, _):
        try:
            created = _run(create())
        except InvalidInput as exc:
            raise CommandError("; ".join(f"{k} {v}" for k, v in exc.fields.items())) from None
        except NotAllowed as exc:
            raise CommandError(f"{exc} (the owner's role must be creator or admin)") from None
        except SlugTaken:
            raise CommandError(f"a stream with slug {args.slug} exists already") from None
    if args.json:
        print(json.dumps({"slug": created.stream.slug, "id": created.stream.id,
                          "stream_key": created.stream_key}))  # fmt: skip
    else:
        print(f"created stream {created.stream.slug} (id {created.stream.id})")
        print(f"stream key (shown once): {created.stream_key}")
    return 0


def _stream_rotate(config: Config, args: argparse.Namespace) -> int:
    from livecore.cli_streams import Rotated, UnknownStream, rotate_key

    async def rotate() -> Rotated:
        async with _services(config, dsn) as (_, db):
            try:
                return await rotate_key(config, db, args.slug)
            except UnknownStream:
                raise CommandError(f"no stream with slug {args.slug}") from None

    with _database_url(config) as (dsn, _):
        rotated = _run(rotate())
    print(rotated.json() if args.json else rotated.text())
    # The key is replaced either way; a live session left running is a failure to act on.
    return EXIT_FAILED if rotated.was_live and not rotated.ended else 0


def _ledger_check(config: Config, args: argparse.Namespace) -> int:
    from livecore.store import Database, apply_migrations
    from livecore.store.ledger import Ledger, LedgerCheck

    async def check() -> tuple[LedgerCheck, int, int]:
        await apply_migrations(dsn)
        db = await Database.connect(dsn, max_size=1)
        try:
            ledger = Ledger(db)
            result = await ledger.check()
            size = await ledger.size()
            return result, size.transactions, size.entries
        finally:
            await db.close()

    with _database_url(config) as (dsn, _):
        result, transactions, entries = _run(check())
    out = {"ok": result.ok, "transactions": transactions, "entries": entries,
           "unbalanced_transactions": result.unbalanced_transactions,
           "accounts_off": result.accounts_off}  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        verdict = "balanced" if result.ok else "BROKEN"
        print(f"ledger {verdict}: {transactions} transactions, {entries} entries, "
              f"{result.unbalanced_transactions} unbalanced, {result.accounts_off} accounts "
              f"whose balance differs from their entries")  # fmt: skip
    return 0 if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
