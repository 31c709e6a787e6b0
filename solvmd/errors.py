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


# --------------------------------------------------------------------------- empty blocks
# A YAML block that is present but empty (``md:`` with nothing under it, or ``md: null``) is
# never read as "use the defaults": it is almost always a block whose fields were deleted or
# mis-indented. Each such block is one message naming it and the way out.

REFERENCE = "docs/reference.md"


def _nullable(annotation) -> bool:
    import typing

    if annotation is type(None) or annotation is typing.Any:
        return True
    return any(_nullable(a) for a in typing.get_args(annotation)) if typing.get_origin(annotation) in (
        typing.Union, __import__("types").UnionType) else False


def _models_in(annotation) -> list:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for a in typing.get_args(annotation):
        out += _models_in(a)
    return out


def _is_block(annotation) -> bool:
    """A mapping in the YAML: a sub-model, a list of sub-models, or a dict."""
    import typing

    if _models_in(annotation):
        return True
    return any(typing.get_origin(a) is dict or a is dict for a in [annotation, *typing.get_args(annotation)])


def empty_blocks(data, model, prefix: str = "") -> list[str]:
    """``path: ...`` messages for every key of ``data`` (a loaded YAML mapping) that is present but
    empty (null): every block (a sub-model, a list of them, a mapping), and every value whose
    field has no meaning for null (``hydrogen_mass_amu: null`` keeps its documented meaning).
    Recurses into sub-blocks and lists of blocks; a union of models is matched by ``kind``."""
    out: list[str] = []
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue  # unknown keys: the model's own validation names them
        path, ann = f"{prefix}{key}", field.annotation
        if value is None and (_is_block(ann) or not _nullable(ann)):  # null of an optional value keeps its meaning
            if _is_block(ann):
                out.append(f"{path}: the block is empty; " + ("it is required: give its fields" if field.is_required()
                           else "give its fields, or leave the line out to use the defaults") + f" ({REFERENCE})")
            else:
                default = "" if field.is_required() else f" ({field.get_default(call_default_factory=True)!r})"
                out.append(f"{path}: no value given; " + ("it is required: give one" if field.is_required()
                           else f"give one, or leave the line out to use the default{default}"))
            continue
        subs = _models_in(ann)
        if not subs:
            continue
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            sub = next((m for m in subs if "kind" in m.model_fields and m.model_fields["kind"].default == item.get("kind")),
                       subs[0])
            where = f"{path}.{i}." if isinstance(value, list) else f"{path}."
            out += empty_blocks(item, sub, where)
    return out


def check_empty_blocks(data, model, source: str, what: str, prefix: str = "") -> None:
    """Raise one SolvmdError listing the empty blocks of ``data`` (see :func:`empty_blocks`)."""
    problems = empty_blocks(data, model, prefix)
    if problems:
        raise SolvmdError("\n".join([f"{source}: invalid {what}"] + [f"  {p}" for p in problems]))


def empty_schema_blocks(data, schema: dict, prefix: str = "") -> list[str]:
    """The same for a mapping checked against a JSON schema (the workflow config): a key whose
    schema does not allow null but whose value is null (an empty YAML block)."""
    out: list[str] = []
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        sub = schema.get("properties", {}).get(key)
        if sub is None:
            continue
        types = sub.get("type", [])
        types = types if isinstance(types, list) else [types]
        if value is None and "null" not in types and None not in sub.get("enum", []):
            kind = "block" if "object" in types or "array" in types else "key"
            what = "fields" if kind == "block" else "value"
            out.append(f"{prefix}{key}: the {kind} is empty; " + (f"it is required: give its {what}"
                       if key in schema.get("required", []) else f"give its {what}, or leave the line out"))
        elif isinstance(value, dict) and "properties" in sub:
            out += empty_schema_blocks(value, sub, f"{prefix}{key}.")
    return out
