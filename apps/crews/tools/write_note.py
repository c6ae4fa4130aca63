"""Write a note (a text file) into the crew's directory of the workspace volume.

Idempotent: the file is replaced whole (written to a temporary file, then renamed), so the
same call twice leaves the same file.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from .base import ToolContext, ToolError

NAME = "write_note"
DESCRIPTION = "Save a text note (a draft, a summary) as a file in the crew's workspace. Replaces a note of that name."
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "filename": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
        "content": {"type": "string", "maxLength": 200000},
    },
    "required": ["filename", "content"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
# The crew's own scratch space, replaced whole and idempotently: nothing outside the crew
# changes, so governance treats it like a read (policies can still name it).
SIDE_EFFECTS = False


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    notes = (ctx.volume_dir() / "notes").resolve()
    notes.mkdir(parents=True, exist_ok=True)
    target = (notes / args["filename"]).resolve()
    if target.parent != notes:
        raise ToolError("The filename must not contain a path.")
    data = args["content"].encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=notes, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return {"path": f"notes/{target.name}", "bytes": len(data)}
