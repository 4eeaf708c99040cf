"""Typed settings written once: each service's model gives its flags, variables and README table.

A service declares one frozen ``ServiceSettings`` model. Each field carries its type and bounds
(pydantic), a description, and an ``Option`` that says how it is spelled outside the code: its
command-line flags (or a positional name) and its environment variable (``FAAS_<NAME>`` unless
given). From that one declaration come:

- ``from_env(environ)``: values from a mapping (only the entry point passes ``os.environ``;
  plain keywords read no environment, so tests build settings directly);
- ``load(cls, argv, environ, ...)``: defaults, then the environment, then the flags, for
  ``__main__``; a bad value is one line naming the flag or variable, and exit code 2;
- ``markdown()``: the README's configuration tables (``python -m services.common.settings
  --markdown`` prints them; a unit test fails when the README differs).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NoReturn, Self, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "Flag",
    "ListenAddress",
    "LogLevel",
    "Names",
    "Option",
    "Port",
    "ServiceSettings",
    "SettingsError",
    "build_parser",
    "load",
    "markdown",
    "options",
]

MARKDOWN_BEGIN = "<!-- settings tables: python -m services.common.settings --markdown -->"
MARKDOWN_END = "<!-- end of settings tables -->"

# The services whose tables the README shows, imported only by the --markdown command, so that
# services.common imports no service.
SERVICES = (
    ("services.dispatcher", "services.dispatcher.settings:DispatcherSettings"),
    ("services.gateway", "services.gateway.settings:GatewaySettings"),
    ("services.gateway.rest", "services.gateway.rest.settings:RestSettings"),
    ("services.worker", "services.worker.settings:WorkerSettings"),
    ("services.launcher", "services.launcher.settings:LauncherSettings"),
)


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line that names the flag or variable."""


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is spelled outside the code.

    ``flags`` are its command-line flags (``--field-name`` when empty); ``positional`` names it
    as an optional positional argument instead; ``env`` is its environment variable (the
    model's ``variable_prefix`` plus the field name, upper-case, when empty). An address setting may
    also be given in parts: ``host_flags`` and ``port_flags`` replace one side of ``host:port``.
    ``default_doc`` documents a default that depends on the machine.
    """

    flags: tuple[str, ...] = ()
    env: str = ""
    positional: str = ""
    host_flags: tuple[str, ...] = ()
    port_flags: tuple[str, ...] = ()
    default_doc: str = ""
    # The flag may be given many times; the field gets the list of values.
    repeatable: bool = False


# --- value types ---------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})


def _to_bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("expected one of 1/0, true/false, yes/no")


def _check_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise ValueError("a port is in 0..65535")
    return port


def _check_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected host:port with a port in 0..65535")
    return address


def _to_level(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


Flag = Annotated[bool, BeforeValidator(_to_bool)]
"""A boolean: 1/0, true/false or yes/no, any case; anything else is an error."""

Port = Annotated[int, AfterValidator(_check_port)]
"""A TCP port, 0..65535 (0: any free port)."""

ListenAddress = Annotated[str, AfterValidator(_check_address)]
"""``host:port`` to listen on."""


def _to_names(value: object) -> object:
    if not isinstance(value, str | list | tuple):
        return value
    items = [value] if isinstance(value, str) else list(value)
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


Names = Annotated[list[str], BeforeValidator(_to_names)]
"""Names, from ``"A,B"`` or a list of such strings (one per repeated flag)."""

LogLevel = Annotated[
    Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"], BeforeValidator(_to_level)
]
"""A standard logging level, any case."""


# --- the model -----------------------------------------------------------------------------


class _MappingSource(PydanticBaseSettingsSource):
    """Raw values from one given mapping, by each field's variable; empty values are unset."""

    def __init__(self, settings_cls: type[ServiceSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ
        self._options = options(settings_cls)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value = self._environ.get(self._options[field_name].env, "").strip()
        return value or None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                values[name] = value
        return values


class ServiceSettings(BaseSettings):
    """A service's settings: typed, bounded, frozen; built from keywords, a mapping or ``load``."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    variable_prefix: ClassVar[str] = "FAAS_"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keywords only: the environment is read where an entry point passes it (from_env).
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """Settings from the variables in ``environ``; raises ``SettingsError`` on a bad value."""
        return cls.from_sources(environ, {})

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], flags: Mapping[str, tuple[str, Any]]) -> Self:
        """Defaults, overridden by ``environ``, overridden by ``flags``.

        ``flags`` maps a field name to how an error names it (the flag and what was given)
        and its value.
        """
        opts = options(cls)
        values = _MappingSource(cls, environ)()
        names = {name: f"{opts[name].env}={value!r}" for name, value in values.items()}
        for name, (where, value) in flags.items():
            values[name] = value
            names[name] = where
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, names)) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like the original."""
        try:
            return type(self)(**{**self.model_dump(), **changes})
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, {})) from None


def _one_line(exc: ValidationError, names: Mapping[str, str]) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if not field:  # a rule across fields: its message names them
            parts.append(message)
            continue
        where = names.get(field) or f"{field}={error.get('input')!r}"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def options(cls: type[ServiceSettings]) -> dict[str, Option]:
    """Each field's ``Option``, with its flags and variable filled in."""
    found = {}
    for name, field in cls.model_fields.items():
        option = next((m for m in field.metadata if isinstance(m, Option)), Option())
        flags = option.flags
        if not flags and not option.positional:
            flags = ("--" + name.replace("_", "-"),)
        env = option.env or cls.variable_prefix + name.upper()
        found[name] = dataclasses.replace(option, flags=flags, env=env)
    return found


# --- the command line ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _choices(field: FieldInfo) -> tuple[str, ...]:
    annotation: Any = field.annotation
    if get_origin(annotation) is Literal:
        return tuple(str(choice) for choice in get_args(annotation) if choice != "")
    return ()


def _default(cls: type[ServiceSettings], name: str, option: Option) -> str:
    field = cls.model_fields[name]
    if option.default_doc:
        return option.default_doc
    if field.default_factory is not None:
        return "computed at start"
    value = field.get_default(call_default_factory=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and name.endswith("_bytes") and value >= 1024:
        for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{value // size} {unit}"
    return '""' if value == "" else str(value)


def build_parser(
    cls: type[ServiceSettings], prog: str, description: str | None
) -> argparse.ArgumentParser:
    """An argument parser with one flag (or positional) per field; unset flags stay absent."""
    parser = _Parser(prog=prog, description=description)
    for name, option in options(cls).items():
        field = cls.model_fields[name]
        choices = _choices(field)
        metavar = "{" + ",".join(choices) + "}" if choices else None
        help_text = f"{field.description} ({option.env}; default {_default(cls, name, option)})"
        help_text = help_text.replace("%", "%%")
        common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if option.positional:
            common.pop("dest")
            parser.add_argument(name, nargs="?", metavar=option.positional, **common)
            continue
        if field.annotation is bool:
            parser.add_argument(*option.flags, action=argparse.BooleanOptionalAction, **common)
        elif option.repeatable:
            parser.add_argument(*option.flags, action="append", metavar=metavar, **common)
        else:
            parser.add_argument(*option.flags, metavar=metavar, **common)
        for part, flags in (("host", option.host_flags), ("port", option.port_flags)):
            if flags:
                parser.add_argument(
                    *flags,
                    dest=f"{name}:{part}",
                    default=argparse.SUPPRESS,
                    help=f"the {part} part of {option.flags[0]}",
                )
    return parser


def _flag_values(
    cls: type[ServiceSettings], given: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, tuple[str, Any]]:
    """The flags given, by field name, each with how an error names it."""
    found: dict[str, tuple[str, Any]] = {}
    for name, option in options(cls).items():
        if name in given:
            label = option.positional or "/".join(option.flags)
            found[name] = (f"{label} {given[name]!r}", given[name])
        parts = [
            f"{'/'.join(flags)} {given[f'{name}:{part}']!r}"
            for part, flags in (("host", option.host_flags), ("port", option.port_flags))
            if f"{name}:{part}" in given
        ]
        if parts:
            # One side of host:port replaced; the other from the flag, variable or default.
            base = found[name][1] if name in found else environ.get(option.env, "").strip()
            host, _, port = str(base or cls.model_fields[name].get_default()).rpartition(":")
            host = given.get(f"{name}:host", host)
            port = given.get(f"{name}:port", port)
            found[name] = (" ".join(parts), f"{host}:{port}")
    return found


S = TypeVar("S", bound=ServiceSettings)


def load(
    cls: type[S],
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
    *,
    prog: str,
    description: str | None,
) -> S:
    """The entry point's settings: defaults, then ``environ``, then the flags in ``argv``.

    A bad value exits with code 2 and one line on stderr naming the flag or the variable.
    """
    parser = build_parser(cls, prog, description)
    given = vars(parser.parse_args(argv))
    try:
        return cls.from_sources(environ, _flag_values(cls, given, environ))
    except SettingsError as exc:
        parser.error(str(exc))


# --- the README ----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(cls: type[ServiceSettings]) -> str:
    """One service's settings as a Markdown table."""
    rows = ["| flag | environment | default | what |", "| --- | --- | --- | --- |"]
    for name, option in options(cls).items():
        flags = [*option.flags, *option.host_flags, *option.port_flags]
        if cls.model_fields[name].annotation is bool:
            flags = [flag.replace("--", "--[no-]", 1) for flag in flags]
        flag_cells = ", ".join(f"`{flag}`" for flag in flags)
        if option.positional:
            flag_cells = f"`{option.positional}` (positional)"
        choices = _choices(cls.model_fields[name])
        what = str(cls.model_fields[name].description or "")
        if choices:
            what += f" (one of {', '.join(choices)})"
        if option.host_flags or option.port_flags:
            parts = ", ".join(f"`{f}`" for f in (*option.host_flags, *option.port_flags))
            what += f"; {parts} replace one part of it"
        default = _default(cls, name, option)
        rows.append(f"| {_cell(flag_cells)} | `{option.env}` | {_cell(default)} | {_cell(what)} |")
    return "\n".join(rows)


def markdown(services: Sequence[tuple[str, str]] = SERVICES) -> str:
    """The README's configuration tables, one per service (``module``, ``module:Class``)."""
    sections = []
    for command, path in services:
        module, _, name = path.partition(":")
        cls = getattr(importlib.import_module(module), name)
        sections.append(f"### `python -m {command}`\n\n{table(cls)}\n")
    return "\n".join(sections)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m services.common.settings --markdown``: print the README's tables."""
    parser = _Parser(prog="python -m services.common.settings", description=main.__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the README's tables")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.error("nothing to do: pass --markdown")
    sys.stdout.write(markdown())


if __name__ == "__main__":
    # Run as the imported module, so that the models' Option metadata is this module's Option.
    importlib.import_module("services.common.settings").main()
