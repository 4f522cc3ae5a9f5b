"""Binder's postBuild step, run on a fresh copy of the repository in a fresh environment."""

import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import httpx
import pytest

from logstream.support.host import free_port
from logstream.web import vendor

ROOT = Path(__file__).resolve().parent.parent


def tracked_files():
    """Return the files Binder would clone: tracked or new, never ignored ones."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture
def clone(tmp_path):
    """A copy of the repository as Binder checks it out: no fetched client, nothing built."""
    if not (ROOT / ".git").exists():
        pytest.fail("the Binder test copies the repository's tracked files; it needs git")
    target = tmp_path / "repo"
    for name in tracked_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    assert not (target / "logstream" / "static" / "vendor").exists()
    return target


@pytest.fixture
def environment(tmp_path):
    """A fresh virtual environment that sees environment.yml's packages but not logstream."""
    home = tmp_path / "env"
    venv.create(home, with_pip=False)
    site = Path(subprocess.run(
        [home / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    # The test environment's packages, all but logstream (and its .pth hook,
    # which would import another checkout): environment.yml's, as conda installs them.
    packages = tmp_path / "environment-yml"
    packages.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(("logstream", "_editable_impl_logstream")):
            (packages / entry.name).symlink_to(entry)
    (site / "environment_yml.pth").write_text(f"{packages}\n")
    return home


def test_post_build_fetches_the_client_and_installs_a_working_package(clone, environment,
                                                                      tmp_path):
    bin_dir = environment / "bin"
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(environment),
               # npm answers from its cache when it has the pinned package.
               npm_config_prefer_offline="true")
    result = subprocess.run([clone / "postBuild"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    assert vendor.is_present(clone / "logstream" / "static" / "vendor" / "socket.io.min.js")
    probe = ("import importlib.metadata as m, logstream\n"
             "print(logstream.__file__)\n"
             "print(m.distribution('logstream').entry_points.select("
             "group='jupyter_serverproxy_servers')['logstream'].value)\n")
    found = subprocess.run([bin_dir / "python", "-c", probe], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    assert Path(found[0]).is_relative_to(environment), "installed into the environment"
    assert found[1] == "logstream.web.jupyter_proxy:setup_logstream"

    # The installed command serves the viewer, with the fetched client.
    port = free_port()
    server = subprocess.Popen([bin_dir / "logstream", "serve", "--port", str(port),
                               "--data-dir", str(clone / "data" / "logs")],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        from logstream.support import wait_until
        url = f"http://127.0.0.1:{port}"

        def answers():
            try:
                return httpx.get(f"{url}/healthz").status_code == 200
            except httpx.TransportError:
                return server.poll() is not None
        wait_until(answers, 30, 0.1, what="the installed logstream to serve")
        assert server.poll() is None, "logstream serve exited"
        assert "sample-shop-api" in httpx.get(url + "/").text
        assert httpx.get(f"{url}/static/vendor/socket.io.min.js").status_code == 200
    finally:
        server.terminate()
        server.wait(15)
