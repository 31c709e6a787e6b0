"""Exception types: every user-facing failure is a SolvmdError with one clear message."""

import re


class SolvmdError(Exception):
    """A user-facing error: the message names what is wrong and what is allowed."""


class SimulationError(SolvmdError):
    """MD blew up (NaN or exploding energy); the message names the stage and step."""


def validation_message(err, source: str, what: str, loc_prefix: str = "", hint: str = "") -> str:
    """One message for a pydantic ``ValidationError``: a header naming the file and the kind
    of input, then one line per bad field (``field.path: what is wrong (got value)``).

    ``loc_prefix`` is prepended to each field path (e.g. ``md.``); ``hint`` is added to
    unknown-field and wrong-kind messages (e.g. the allowed choices)."""
    lines = [f"{source}: invalid {what}"]
    for e in err.errors():
        loc = loc_prefix + (".".join(str(p) for p in e["loc"]) or "(top level)")
        msg = e["msg"].removeprefix("Value error, ")
        if loc == loc_prefix + "(top level)" and (m := re.match(r"^([a-z_]+(?:\.\w+)+): (.*)$", msg, flags=re.S)):
            loc, msg = loc_prefix + m.group(1), m.group(2)  # a cross-field check that names its field
        if e["type"] == "extra_forbidden":
            msg = "unknown field (misspelled?)" + (f"; {hint}" if hint else "")
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found") and hint:
            msg = f"{msg}; {hint}"
        got = e.get("input")
        if e["type"] not in ("missing", "extra_forbidden") and got is not None and not isinstance(got, (dict, list)):
            msg += f" (got {got!r})"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)
