"""Every setting of the typed config with its type, default and one line of meaning, read from the config
dataclasses themselves (their field types, defaults and the comments beside them), so the reference printed by
`morec config show`, `morec train --help` and `morec data prepare --help` cannot drift from the code."""
from __future__ import annotations

import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import typing
from functools import lru_cache

from .config import Config, ConfigError, PrepareConfig

_FIELD = re.compile(r"^    (\w+)\s*:\s*[^=]+=")
MEANING_WIDTH = 110


@lru_cache(maxsize=None)
def _comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in ``cls``'s own source: the comment on the field's line and the comment lines
    that continue it, else the comment block above the field (shared by the uncommented fields under it). A block
    between a commented field and an uncommented one continues the first up to its first capitalised line."""
    lines, _ = inspect.getsourcelines(cls)
    source = textwrap.dedent("".join(lines))
    said = {tok.start[0]: tok.string.lstrip("#").strip() for tok in
            tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    rows = source.splitlines()
    fields = [(n + 1, m.group(1)) for n, row in enumerate(rows) if (m := _FIELD.match(row))]
    out, pending, previous, group = {}, [], None, []
    for n, row in enumerate(rows, 1):
        field = next((name for line, name in fields if line == n), None)
        if field is None:
            if row.strip().startswith("#"):
                pending.append(said.get(n, ""))
            elif row.strip():
                pending, previous, group = [], None, []
            continue
        if previous is not None and pending:  # continuation of the commented field above, up to a new sentence
            split = next((i for i, text in enumerate(pending) if text[:1].isupper()), 0) \
                if n not in said else len(pending)
            out[previous] += " " + " ".join(pending[:split])
            pending = pending[split:]
        if n in said:
            out[field], previous, group = said[n], field, []
        else:  # uncommented fields right under a block share it
            group = pending or group
            out[field], previous = " ".join(group), None
        pending = []
    return out


def _meaning(cls: type, name: str, width: int | None = MEANING_WIDTH) -> str:
    """The field's comment on one line, cut to ``width`` characters (None: whole)."""
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            text = _comments(klass).get(name, "")
            break
    else:
        text = ""
    text = " ".join(text.split())
    return text if width is None or len(text) <= width else text[:width - 3].rsplit(" ", 1)[0] + " ..."


def _type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp)).replace("NoneType", "none")
    if typing.get_origin(tp) is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value) if value == "" or " " in value else value
    return str(value)


def settings(cls: type, prefix: str, width: int | None = MEANING_WIDTH) -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every setting under ``cls``, nested sections flattened."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += settings(tp, f"{prefix}{f.name}.", width)
        else:
            rows.append((prefix + f.name, _type_name(tp), _default(f), _meaning(cls, f.name, width)))
    return rows


SECTIONS = ("prepare", "run", "model", "model.encoder", "model.encoder.text", "model.encoder.vision", "train", "eval")


def all_settings(width: int | None = MEANING_WIDTH) -> list[tuple[str, str, str, str]]:
    return settings(PrepareConfig, "prepare.", width) + settings(Config, "", width)


def _section_of(key: str) -> str:
    """The longest of :data:`SECTIONS` that holds ``key`` (``run`` for the top-level keys)."""
    return max((s for s in SECTIONS if key.startswith(s + ".")), key=len, default="run")


def markdown() -> str:
    """The configuration reference as Markdown, one table per section with whole meanings
    (docs/guide/configuration.md is this text; `morec config show --markdown` prints it)."""
    out = ["# Configuration reference", "",
           "Back to the [guide](README.md) · [README](../../README.md)", "",
           "Generated from the typed config (`morec/config/`) by `morec config show --markdown`: every setting with",
           "its type, default and meaning. Give one as `--SECTION.KEY=VALUE` on `morec train` / `morec data prepare`,",
           "or under its section in a YAML config (`--config FILE.yaml`); an unknown key or a wrong type is an error.",
           ""]
    rows = all_settings(width=None)
    for section in SECTIONS:
        mine = [r for r in rows if _section_of(r[0]) == section]
        out += [f"## {section}", "", "| setting | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| `--{key}` | {tp.replace('|', chr(92) + '|')} | `{default}` | {meaning.replace('|', chr(92) + '|')} |"
                for key, tp, default, meaning in mine]
        out.append("")
    return "\n".join(out)


def show(section: str | None = None) -> str:
    """The settings of ``section`` (a prefix such as train or model.encoder; None = all) as aligned lines."""
    rows = [r for r in all_settings() if section is None or r[0].startswith(section.rstrip(".") + ".")
            or r[0] == section or (section == "run" and "." not in r[0])]
    if not rows:
        raise ConfigError(f"no config section {section!r}; the sections are {', '.join(SECTIONS)}")
    key_w = max(len(r[0]) for r in rows)
    type_w = max(len(r[1]) for r in rows)
    lines = [f"  --{key:<{key_w}}  {tp:<{type_w}}  default {default}\n      {meaning}" if meaning else
             f"  --{key:<{key_w}}  {tp:<{type_w}}  default {default}" for key, tp, default, meaning in rows]
    return "\n".join(lines) + "\n"


def epilog(*sections: str) -> str:
    """--help text listing the settings of ``sections``, and where the rest are."""
    listed = "".join(f"\n{section}.* settings (--{section}.KEY=VALUE):\n{show(section)}" if section != "run" else
                     f"\nrun settings (--KEY=VALUE):\n{show(section)}" for section in sections)
    return (f"{listed}\n`morec config show [SECTION]` prints these for one section "
            f"({', '.join(SECTIONS)}).")


def cmd_config_show(args, extra) -> int:
    print(markdown() if args.markdown else show(args.section), end="")
    return 0


def add_command(sub) -> None:
    """`morec config show [SECTION]`."""
    cfg = sub.add_parser("config", help="the settings of prepare and train (type, default, meaning)")
    show_parser = cfg.add_subparsers(dest="config_command", required=True).add_parser(
        "show", help="every --section.key setting with its type, default and meaning")
    show_parser.add_argument("section", nargs="?", help=f"one of {', '.join(SECTIONS)} (default: all)")
    show_parser.add_argument("--markdown", action="store_true",
                             help="every section as Markdown tables with whole meanings (docs/guide/configuration.md)")
    show_parser.set_defaults(func=cmd_config_show)
