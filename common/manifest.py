"""manifest.json helpers: what produced an output, from which inputs, with which parameters."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypten_fl.common import __version__


def describe_inputs(paths: list[Path]) -> list[dict[str, Any]]:
    """Name and size of each input file (never its content)."""
    return [{"name": str(p), "bytes": p.stat().st_size} for p in paths if p.exists()]


def base_manifest(command: str, params: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """The fields every manifest.json carries."""
    return {
        "tool": "crypten-fl",
        "version": __version__,
        "command": command,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "parameters": params,
        "seed": seed,
    }


def write_json(path: Path, obj: Any) -> None:
    """Write JSON with stable formatting (sorted keys off: field order is meaningful)."""
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file; a missing or malformed file is a UserError naming it."""
    from crypten_fl.common.errors import UserError

    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise UserError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a JSON text file (not UTF-8)") from err
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from err
