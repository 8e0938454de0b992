"""Reading the user's MindIE config folder: which folder, which files, parsed and checked.

The folder is read, never written. A Kubernetes ConfigMap volume (files linked through `..data`
to a timestamped folder) is the normal case; a link that leads outside the folder is refused.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import parse_json, validate_document
from supervisor_pd.formats.controller_config import ControllerConfigFile
from supervisor_pd.formats.coordinator_config import CoordinatorConfigFile
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.settings import Settings, env_name

MAX_INPUT_BYTES = 100 * 1024 * 1024
TEMPLATE = "config.json"
CONTROLLER = "ms_controller.json"
COORDINATOR = "ms_coordinator.json"
_SERVER_FILE = re.compile(r"config([1-9][0-9]*)\.json")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Document(Generic[M]):
    """One input file: its name, the JSON as read (never modified), and the checked model."""

    name: str
    raw: dict[str, Any]
    model: M


@dataclass(frozen=True)
class ConfInputs:
    conf_dir: Path
    source: str
    template: Document[ServerConfigFile] | None
    servers: dict[int, Document[ServerConfigFile]]
    controller: Document[ControllerConfigFile]
    coordinator: Document[CoordinatorConfigFile]


def show_path(path: Path | str) -> str:
    """A path fit for a one-line message: control characters escaped, the rest as is."""
    text = str(path)
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def sample_conf_dir() -> Path:
    """The sample MindIE configs: a copy inside the wheel, or configs/mindie in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data" / "mindie", package.parent / "configs" / "mindie"):
        if (candidate / CONTROLLER).is_file():
            return candidate
    raise InputError("--simulate", "the sample configs are missing from this installation; pass --conf-dir")


def resolve_conf_dir(settings: Settings) -> tuple[Path, str]:
    """The config folder to read and how it was chosen."""
    if settings.conf_dir is not None:
        return settings.conf_dir, f"--conf-dir / {env_name('conf_dir')}"
    if settings.config_from_config_file_path is not None:
        return settings.config_from_config_file_path, env_name("config_from_config_file_path")
    if settings.simulate is not None:
        return sample_conf_dir(), "sample configs (simulated host)"
    if settings.mies_install_path is not None:
        return settings.mies_install_path / "conf", f"{env_name('mies_install_path')}/conf"
    raise InputError(
        "--conf-dir",
        f"no config folder given: pass --conf-dir DIR, or set {env_name('conf_dir')}, "
        "CONFIG_FROM_CONFIG_FILE_PATH or MIES_INSTALL_PATH",
    )


def load_inputs(settings: Settings) -> ConfInputs:
    """Read and check every input file the plan needs."""
    folder, source = resolve_conf_dir(settings)
    try:
        info = folder.stat()
    except FileNotFoundError:
        raise InputError(show_path(folder), f"config folder does not exist (chosen by {source})") from None
    except OSError as exc:
        raise InputError(show_path(folder), f"config folder cannot be read: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise InputError(show_path(folder), f"is not a folder (chosen by {source})")
    real = folder.resolve()
    names = _listing(folder)

    def load(name: str, model: type[M]) -> Document[M]:
        raw = _read_json(folder, real, name)
        return Document(name, raw, validate_document(model, raw, name))

    for required in (CONTROLLER, COORDINATOR):
        if required not in names:
            raise InputError(show_path(folder / required), "is missing: the config folder needs it")
    template = None
    servers: dict[int, Document[ServerConfigFile]] = {}
    if settings.gen_server_port:
        if TEMPLATE not in names:
            raise InputError(
                show_path(folder / TEMPLATE),
                f"is missing; with {env_name('gen_server_port')}=true every Server's config comes from it",
            )
        template = load(TEMPLATE, ServerConfigFile)
    else:
        for name in sorted(names, key=lambda n: (len(n), n)):
            match = _SERVER_FILE.fullmatch(name)
            if match:
                servers[int(match.group(1))] = load(name, ServerConfigFile)
        if not servers:
            raise InputError(
                show_path(folder),
                f"has no config1.json; with {env_name('gen_server_port')}=false each Server needs its own "
                "config<n>.json",
            )
    return ConfInputs(
        conf_dir=folder,
        source=source,
        template=template,
        servers=servers,
        controller=load(CONTROLLER, ControllerConfigFile),
        coordinator=load(COORDINATOR, CoordinatorConfigFile),
    )


def _listing(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in folder.iterdir()}
    except OSError as exc:
        raise InputError(show_path(folder), f"config folder cannot be listed: {exc.strerror}") from None


def _read_json(folder: Path, real_folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    where = show_path(path)
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        raise InputError(where, "is a link to a file that does not exist") from None
    except (OSError, RuntimeError) as exc:
        raise InputError(where, f"cannot be resolved: {exc}") from None
    if not target.is_relative_to(real_folder):
        raise InputError(
            where,
            f"links to {show_path(target)}, outside the config folder; copy the file into the folder "
            "(links inside it, like a ConfigMap's ..data, are fine)",
        )
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(where, f"cannot be opened: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # checked on the descriptor: fdopen refuses a folder itself
        os.close(fd)
        raise InputError(where, "is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_INPUT_BYTES:
            raise InputError(
                where,
                f"is {info.st_size} bytes ({info.st_size / 2**20:.0f} MiB); config files larger than "
                f"{MAX_INPUT_BYTES >> 20} MiB are refused",
            )
        try:
            raw = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise InputError(where, f"cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(where, f"is larger than {MAX_INPUT_BYTES >> 20} MiB")
    data = parse_json(raw, name)
    if not isinstance(data, dict):
        raise InputError(name, "must hold a JSON object at the top level")
    return data
