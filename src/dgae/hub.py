"""Model folders from the Hugging Face Hub: ``org/name`` where no such local folder exists."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def local_or_hub(name: str | Path, files: tuple[str, ...]) -> Path:
    """``name`` as a local folder when it exists (or does not look like a Hub id); otherwise
    the Hub repository ``name`` downloaded (``files`` only) through ``huggingface_hub``, which
    honours ``HF_HUB_OFFLINE`` (a cached copy is used offline). Failures name the repository
    and why."""
    path = Path(name)
    if path.exists() or not REPO_ID.match(str(name)):
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name), allow_patterns=list(files)))
    except Exception as err:  # offline, unknown repository, network: one clear message
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else str(err)
        raise FileNotFoundError(
            f"model {name!r} is neither a local folder nor downloadable from the Hugging Face "
            f"Hub ({why})"
        ) from None
