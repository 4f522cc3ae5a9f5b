"""Make the Jupyter kernels the tests start import this checkout's logstream."""

import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)
# A kernel runs in its notebook's folder, so without this it would import
# whichever logstream is installed, which may be another checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(
    path for path in (ROOT, os.environ.get("PYTHONPATH")) if path)
