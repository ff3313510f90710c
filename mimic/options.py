"""One way to declare an option: a dataclass field whose metadata documents it.

The CLI's command options (`mimic.cli`) and the model adapters' options (`mimic.eval.api`) are both
dataclasses built with `option`, so every option, wherever it lives, carries its help text and is read
the same way: the CLI builds its parser from the metadata, the evaluation runner reads `identity` and
`secret` to decide what a resumed run must match and what never reaches results.json. (The training
options are TRL-style dataclasses parsed by `TrlParser`, with `help` metadata too.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING
from typing import Any

__all__ = ["option"]


def option(
    default: Any = MISSING,
    *,
    help: str,
    choices: list | tuple | None = None,
    positional: bool = False,
    metavar: str | None = None,
    identity: bool = True,
    secret: bool = False,
    **kw,
):
    """A dataclass field with its documentation (`help` is required: no undocumented options).

    default: the default value; lists, dicts and sets are copied per instance. Omit it for a required option.
    help: what the option does (shown by `--help`). choices, positional, metavar: how the CLI offers it.
    identity: whether another value would change a model's answers, so that resuming an evaluation run with
    it changed is refused (timeouts and parallelism do not). secret: never shown, logged or written (API
    keys); implies identity=False.
    """
    meta = {"help": help, "choices": choices, "positional": positional, "metavar": metavar,
            "identity": identity and not secret, "secret": secret}
    if secret:
        kw.setdefault("repr", False)
    if default is MISSING:
        return dataclasses.field(metadata=meta, **kw)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)
