"""`embed-server serve`: flags are generated from ServerSettings, so --help documents every
setting with its EMBED_* environment variable. Flags win over the environment."""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ValidationError

from models.errors import CardError
from server.settings import ServerSettings

log = logging.getLogger("server")


def _literal_choices(annotation: Any) -> list[str] | None:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if len(args) == 1 and typing.get_origin(args[0]) is Literal:
        return [str(a) for a in typing.get_args(args[0])]
    return None


def _base_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    for name, field in ServerSettings.model_fields.items():
        env = f"EMBED_{name.upper()}"
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("env_only"):
            parser.epilog = (parser.epilog or "Settings only taken from the environment:\n") + (
                f"  {env}: {field.description}\n"
            )
            continue
        flag = "--" + name.replace("_", "-")
        default = field.get_default(call_default_factory=True)
        shown = "the card's" if default is None else (",".join(default) if isinstance(default, list) else default)
        help_text = f"{field.description} [env {env}; default: {shown}]"
        annotation = field.annotation
        choices = _literal_choices(annotation)
        base = _base_type(annotation)
        kwargs: dict[str, Any] = {"help": help_text, "default": argparse.SUPPRESS, "dest": name}
        if typing.get_origin(base) is list:
            kwargs.update(action="append", metavar=name.upper())
        elif base is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif choices is not None:
            kwargs.update(choices=choices, metavar="{" + "|".join(choices) + "}")
        else:
            kwargs.update(type=base if base in (int, float) else str, metavar=name.upper())
        parser.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embed-server",
        description="OpenAI-compatible embedding server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve embedding models over HTTP",
        description="Serve embedding models over HTTP.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # else --api-key would silently mean --api-keys-file
    )
    add_settings_arguments(serve)
    # `embed-server --help` shows every flag of its one command.
    parser.epilog = serve.format_help()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    args.pop("command")
    try:
        settings = ServerSettings(**args)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-") if error["loc"] else "settings"
        print(f"embed-server: {where}: {error['msg']}", file=sys.stderr)
        return 2
    return serve(settings)


def serve(settings: ServerSettings) -> int:
    from server.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    log.info("settings: %s", settings.redacted())
    if settings.data_dir:
        from server.data_dir import use_data_dir

        use_data_dir(settings.data_dir)  # before the libraries that read these variables load
    import uvicorn

    from server.app import create_app
    from server.draining import DRAIN_BACKSTOP_S, DrainingServer
    from server.lifecycle import resolve_cards

    try:
        cards = resolve_cards(settings)
    except CardError as exc:
        print(f"embed-server: {exc}", file=sys.stderr)
        return 2
    failures: list[BaseException] = []
    server: DrainingServer | None = None

    def on_fatal(exc: BaseException) -> None:
        failures.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, cards=cards, on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # its records go through the server's handler (server/logs.py)
        access_log=False,  # the request layer writes the access log (--access-log)
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # A backstop only: the drain itself answers what is left with 503 at --drain-timeout-s.
        timeout_graceful_shutdown=settings.drain_timeout_s + DRAIN_BACKSTOP_S,
    )
    server = DrainingServer(config, app.state.server)
    server.run()
    if failures:
        print(f"embed-server: start-up failed: {failures[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
