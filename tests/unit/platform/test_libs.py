"""jemalloc found as MindIE's boot.sh finds it, and only a library nobody else could have planted."""

import os
from pathlib import Path

import pytest

from supervisor_pd.platform.hostfs import HostFS
from supervisor_pd.platform.libs import JEMALLOC, find_jemalloc, jemalloc_preloaded, with_preload


def library(root: Path, folder: str, mode: int = 0o644) -> Path:
    path = root / folder.lstrip("/") / JEMALLOC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF")
    path.chmod(mode)
    return path


def test_found_directly_or_one_folder_below_usr_lib(tmp_path: Path) -> None:
    assert find_jemalloc(HostFS(tmp_path)) is None
    below = library(tmp_path, "/usr/lib/aarch64-linux-gnu")
    assert find_jemalloc(HostFS(tmp_path)) == below
    direct = library(tmp_path, "/usr/lib")
    assert find_jemalloc(HostFS(tmp_path)) == direct  # boot.sh's find lists it first


def test_a_link_is_not_taken(tmp_path: Path) -> None:
    real = library(tmp_path, "/opt/lib")
    link = tmp_path / "usr/lib64" / JEMALLOC
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert find_jemalloc(HostFS(tmp_path)) is None


@pytest.mark.parametrize("mode", [0o666, 0o664])
def test_a_library_others_may_write_is_not_preloaded(tmp_path: Path, mode: int) -> None:
    library(tmp_path, "/usr/lib", mode)
    assert find_jemalloc(HostFS(tmp_path)) is None


def test_a_library_of_another_owner_is_not_preloaded(tmp_path: Path) -> None:
    path = library(tmp_path, "/usr/lib")
    if os.getuid() != 0:
        pytest.skip("only root can give a file to another owner")
    os.chown(path, 4242, -1)
    assert find_jemalloc(HostFS(tmp_path)) is None


def test_preload_goes_first_unless_a_jemalloc_is_already_there() -> None:
    lib = Path("/usr/lib/libjemalloc.so.2")
    assert with_preload(None, lib) == str(lib)
    assert with_preload("/opt/a.so", lib) == f"{lib}:/opt/a.so"
    assert with_preload("/opt/jemalloc/libjemalloc.so.2", lib) == "/opt/jemalloc/libjemalloc.so.2"
    assert with_preload("/opt/a.so", None) == "/opt/a.so"
    assert jemalloc_preloaded("/opt/a.so /opt/x/libjemalloc.so") == "/opt/x/libjemalloc.so"
    assert jemalloc_preloaded("/opt/a.so") is None
