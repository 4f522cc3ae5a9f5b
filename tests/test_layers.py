"""The package's layers: imports point one way, and `serve` loads no measuring tool."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_one_way():
    # The contracts live in pyproject.toml ([tool.importlinter]).
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_serve_loads_no_measuring_tool_or_optional_dependency():
    # What `logstream serve` imports before it starts serving.
    probe = ("import sys\n"
             "from logstream import cli\n"
             "from logstream.web.server import serve_forever\n"
             "from logstream.web.app import create_app\n"
             "create_app('DATA')\n"
             "print(' '.join(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", probe.replace("DATA", "data/logs")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    loaded = set(result.stdout.split())
    assert "logstream.web.app" in loaded
    unwanted = {name for name in loaded
                if name.split(".")[0] in {"psutil", "tqdm", "httpx_sse", "ipywidgets",
                                          "anywidget", "matplotlib"}
                or name.startswith(("logstream.tools", "logstream.clients", "logstream.scale"))}
    assert not unwanted, f"serve imports {sorted(unwanted)}"
