"""Command line: ``python -m gateway serve|hash-key|check-stream``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from gateway.config import ConfigError, Settings, hash_key, load_settings, settings_table
from gateway.logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="TradeTrust chat gateway: gRPC service in front of GetStream.io Chat.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve gRPC (and the HTTP bridge)",
        description="Serve the gateway, configured from the environment (CHAT_GATEWAY_*, "
        "GETSTREAM_API_KEY/SECRET, STREAM_CHAT_URL) and the optional TOML file named by "
        "CHAT_GATEWAY_CONFIG. Stops gracefully on SIGTERM/SIGINT.",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="dev profile: documented dev keys and secrets, local backend unless "
        "GETSTREAM_API_KEY is set; never for production",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N gateway processes sharing the ports (SO_REUSEPORT) to use N cores",
    )
    check = commands.add_parser(
        "check-stream",
        help="check (and with --apply, fix) the Stream app settings order chats need",
        description="Verify that the order channel type has read events and uploads on and "
        "that the app's upload configs allow images only. Exit 0 when ready, 1 when not, "
        "3 when Stream cannot be asked.",
    )
    check.add_argument("--apply", action="store_true", help="fix what is wrong")
    check.add_argument(
        "--dev", action="store_true", help="dev profile settings (with GETSTREAM_API_KEY set)"
    )
    rec = commands.add_parser(
        "reconcile",
        help="compare every order in the registry with Stream (and with --apply, repair)",
        description="Compare each order's channel in Stream with the registry (exists, "
        "members, support agents' roles, frozen) and list order channels Stream has that the "
        "registry lacks. Exit 0 when everything matches, 1 when something differs, 3 when "
        "Stream cannot be asked, 4 when the registry cannot be read. --apply hands every "
        "difference to the sync worker and runs it; nothing in Stream is ever deleted.",
    )
    rec.add_argument("--apply", action="store_true", help="repair the differences")
    rec.add_argument("--json", action="store_true", help="print the report as JSON")
    rec.add_argument(
        "--dev", action="store_true", help="dev profile settings (with GETSTREAM_API_KEY set)"
    )
    commands.add_parser(
        "settings",
        help="print every setting (variable, meaning, default) as the README's Markdown table",
    )
    commands.add_parser(
        "hash-key",
        help="print the SHA-256 of a service key (read from stdin) for CHAT_GATEWAY_SERVICES",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "settings":
        sys.stdout.write(settings_table())
        return 0
    if args.command == "hash-key":
        key = getpass.getpass("service key: ") if sys.stdin.isatty() else sys.stdin.readline()
        sys.stdout.write(hash_key(key.strip()) + "\n")
        return 0
    try:
        settings = load_settings(dev=args.dev)
        if args.command in ("check-stream", "reconcile") and settings.stream.backend != "stream":
            raise ConfigError(f"{args.command} needs the stream backend (set GETSTREAM_API_KEY)")
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    obs = settings.observability
    configure_logging(obs.log_level, obs.log_format, access_log=obs.access_log)
    if args.command == "check-stream":
        return asyncio.run(_check_stream(settings, apply=args.apply))
    if args.command == "reconcile":
        return asyncio.run(_reconcile(settings, apply=args.apply, as_json=args.json))
    if args.workers < 1:
        sys.stderr.write("--workers must be at least 1\n")
        return 2
    if args.workers > 1:
        from gateway.supervisor import run_workers

        return run_workers(settings, args.workers, dev=args.dev)
    from gateway.app import serve

    if settings.edge.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(settings))
    else:
        asyncio.run(serve(settings))
    return 0


async def _check_stream(settings: Settings, *, apply: bool) -> int:
    from gateway.chat import ChatBackendError
    from gateway.chat.readiness import check_stream_app
    from gateway.chat.stream import StreamChatBackend

    backend = await StreamChatBackend.open(settings.stream)
    try:
        report = await check_stream_app(backend, settings.stream.channel_type, apply=apply)
    except ChatBackendError as exc:
        sys.stderr.write(f"cannot check the Stream app: {exc}\n")
        return 3
    finally:
        await backend.close()
    for fix in report.applied:
        sys.stdout.write(f"fixed: {fix}\n")
    for problem in report.problems:
        sys.stdout.write(f"NOT READY: {problem}\n")
    if report.ready:
        sys.stdout.write(
            f"ready: channel type {settings.stream.channel_type!r} and upload settings\n"
        )
        return 0
    sys.stdout.write("run `python -m gateway check-stream --apply` to fix\n")
    return 1


async def _reconcile(settings: Settings, *, apply: bool, as_json: bool) -> int:
    from gateway.app import reconcile_once
    from gateway.chat import ChatBackendError
    from gateway.domain import UnavailableError

    try:
        report = await reconcile_once(settings, apply=apply)
    except ChatBackendError as exc:
        sys.stderr.write(f"cannot ask Stream: {exc}\n")
        return 3
    except UnavailableError as exc:
        sys.stderr.write(f"cannot read the registry: {exc}\n")
        return 4
    sys.stdout.write(report.as_json() + "\n" if as_json else report.table())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
