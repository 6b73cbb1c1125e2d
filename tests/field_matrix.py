"""Helpers of the bad-input matrices: turn a parameter-table field ('devices[].samples')
into a concrete path in a document and change or delete the value there."""

from __future__ import annotations

import copy


def concrete(path: str) -> list[str | int]:
    """'devices[].flops_per_s' -> ['devices', 1, 'flops_per_s'] (the second device)."""
    parts: list[str | int] = []
    for piece in path.split("."):
        if piece.endswith("[]"):
            parts += [piece[:-2], 1]
        else:
            parts.append(piece)
    return parts


def display(parts: list[str | int]) -> str:
    """['devices', 1, 'samples'] -> 'devices[1].samples' (how errors name the field)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text


def mutate_document(base: dict, path: str, value=None, delete: bool = False) -> tuple[dict, str]:
    """A deep copy of ``base`` with the field set to ``value`` (or deleted), and its shown path."""
    document = copy.deepcopy(base)
    parts = concrete(path)
    holder = document
    for part in parts[:-1]:
        holder = holder[part]
    if delete:
        del holder[parts[-1]]
    else:
        holder[parts[-1]] = value
    return document, display(parts)
