"""Command line: ``python -m gateway serve|hash-key``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

from gateway.config import ConfigError, hash_key, load_settings


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
    commands.add_parser(
        "hash-key",
        help="print the SHA-256 of a service key (read from stdin) for CHAT_GATEWAY_SERVICES",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "hash-key":
        key = getpass.getpass("service key: ") if sys.stdin.isatty() else sys.stdin.readline()
        sys.stdout.write(hash_key(key.strip()) + "\n")
        return 0
    try:
        settings = load_settings(dev=args.dev)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from gateway.main import serve

    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
