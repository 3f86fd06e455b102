"""The ``config.json`` of a folder written by cabench (model folders, GAN run folders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cabench.errors import CabenchError


def read_folder_config(folder: str | Path, fmt: str, version: int, what: str,
                       name: str = "config.json") -> dict[str, Any]:
    """The JSON config ``folder/name`` of a ``what`` (e.g. "cnn model folder"), checked to be of
    format ``fmt`` and ``version``; CabenchError naming the problem otherwise."""
    folder = Path(folder)
    path = folder / name
    if not path.is_file():
        raise CabenchError(f"{folder}: not a {what} (no {name})")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CabenchError(f"{path}: cannot read it ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != fmt:
        raise CabenchError(f"{path}: not a {what} (format is not {fmt})")
    if cfg.get("format_version") != version:
        raise CabenchError(f"{path}: format version {cfg.get('format_version')}, this cabench "
                           f"reads version {version}")
    return cfg
