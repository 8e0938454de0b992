"""Preflight checks of the model weights each Server loads, by MindIE-LLM's own rules.

The Server checks `modelWeightPath` with SafePath(DIR, "r", 0750) (model_deploy_config.cpp:467)
and reads `<weights>/config.json` with SafePath(FILE, "r", 0640, 500 MB, ".json")
(model_deploy_config.cpp:56, safe_io.cpp:30). SafePath (safe_path.cpp) resolves the path, then
requires: it exists; only `[A-Za-z0-9_./-]` and no `..` (:352); at most 4096 characters, 32
levels and 255 per name (:359); the right type; owner = the running uid or uid 0 (:310);
access for the mode (:266); no permission bit beyond the limit unless uid 0 (:281). Owner and
limit failures are only printed when MINDIE_CHECK_INPUTFILES_PERMISSION=0. The model runner then
needs `model_type` (atb_llm/models/__init__.py:54) and a `torch_dtype` of float16 or bfloat16
(atb_llm/runner/model_runner.py:302).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from supervisor_pd.doctor.report import Check, Status
from supervisor_pd.plan.model import Plan

_PATH_CHARS = re.compile(r"^(?!.*\.\.)[a-zA-Z0-9_./-]+$")
_MAX_PATH, _MAX_DEPTH, _MAX_NAME = 4096, 32, 255
_DIR_LIMIT, _FILE_LIMIT = 0o750, 0o640
_CONFIG_BYTES = 500 * 1024 * 1024
_DTYPES = ("float16", "bfloat16")
SOURCE_DIR = "MindIE-LLM model_deploy_config.cpp:467, safe_path.cpp:281-357"
SOURCE_CONFIG = (
    "model_deploy_config.cpp:56, safe_io.cpp:30; atb_llm models/__init__.py:54, model_runner.py:302; "
    "mindie_llm router_impl.py:236"
)


@dataclass(frozen=True)
class Weights:
    path: str
    servers: tuple[str, ...]  # the Servers whose config<n>.json names it
    max_seq_len: int | None = None  # the largest ModelDeployConfig.maxSeqLen among them


def weights_of(plan: Plan) -> list[Weights]:
    """Each distinct modelWeightPath of the planned Server configs, with the Servers using it."""
    users: dict[str, list[str]] = {}
    longest: dict[str, int] = {}
    for server in plan.servers:
        document = json.loads(plan.file(server.config_file).content)
        deploy = document.get("BackendConfig", {}).get("ModelDeployConfig", {})
        seq = deploy.get("maxSeqLen")
        for model in deploy.get("ModelConfig", []):
            path = model.get("modelWeightPath")
            if isinstance(path, str):
                users.setdefault(path, []).append(server.name)
                if isinstance(seq, int):
                    longest[path] = max(longest.get(path, 0), seq)
    return [Weights(path, tuple(names), longest.get(path)) for path, names in users.items()]


@dataclass(frozen=True)
class Finding:
    text: str
    relaxable: bool = False  # an owner/limit finding MINDIE_CHECK_INPUTFILES_PERMISSION=0 relaxes
    fix: str = ""
    harmless: bool = False  # worth a warning, never a failure


_MISSING = "mount the weights there, or name them in modelWeightPath or MINDIE_MODEL_WEIGHT_PATH"
_OWNER = "chown -R <the Servers' uid> the weights"
_MODE = "chmod 750 the folder and 640 its files"
_PLAIN = "move the weights to a plain path (a link is resolved first, so linking does not help)"
_CONFIG = "use the model's own config.json (from the folder the model was published in)"


def safe_path_findings(raw: str, directory: bool, limit: int, uid: int) -> list[Finding]:
    """What MindIE's SafePath would refuse about `raw`: empty when it passes."""
    resolved = Path(raw).expanduser().resolve()
    path = str(resolved)
    if not resolved.exists():
        return [Finding(f"{raw} does not exist", fix=_MISSING)]
    if not _PATH_CHARS.match(path):
        return [
            Finding(
                f"{path} has characters MindIE refuses (it allows A-Z a-z 0-9 _ . / - and no '..')",
                fix=_PLAIN,
            )
        ]
    parts = resolved.parts
    if len(path) > _MAX_PATH or len(parts) > _MAX_DEPTH or any(len(part) > _MAX_NAME for part in parts):
        return [Finding(f"{path} is longer than MindIE allows (4096 characters, 32 levels, 255 per name)", fix=_PLAIN)]
    if directory and not resolved.is_dir():
        return [Finding(f"{path} is not a folder", fix=_MISSING)]
    if not directory and not resolved.is_file():
        return [Finding(f"{path} is not a file", fix=_MISSING)]
    info = resolved.stat()
    findings = []
    if uid != 0 and info.st_uid != uid:
        findings.append(Finding(f"{path} is owned by uid {info.st_uid}, not the Servers' uid {uid}", True, _OWNER))
    wanted = os.R_OK | (os.X_OK if directory else 0)
    if not os.access(path, wanted):
        findings.append(Finding(f"{path} cannot be read by uid {uid}", fix=_MODE))
    mode = stat.S_IMODE(info.st_mode)
    if uid != 0 and mode & ~limit:
        findings.append(Finding(f"{path} has mode {mode:04o}, more than MindIE's limit {limit:04o}", True, _MODE))
    return findings


def _outcome(findings: list[Finding], relaxed: bool) -> Status:
    if not findings:
        return Status.PASS
    if all(finding.harmless or (relaxed and finding.relaxable) for finding in findings):
        return Status.WARN
    return Status.FAIL


def check_weights(weights: list[Weights], environ: Mapping[str, str], uid: int) -> list[Check]:
    """The `weights` and `weights-config` checks over every weights folder the Servers load."""
    relaxed = environ.get("MINDIE_CHECK_INPUTFILES_PERMISSION", "") == "0"
    folder = _Tally()
    config = _Tally()
    models: dict[tuple[str | None, str | None], list[str]] = {}
    for item in weights:
        used_by = ", ".join(item.servers)
        findings = safe_path_findings(item.path, True, _DIR_LIMIT, uid)
        status = folder.add(findings, relaxed, f"{item.path} ({used_by}): ")
        if status is Status.FAIL:
            continue
        model = _config(item, uid, relaxed, config)
        if model is not None:
            models.setdefault(model, []).append(used_by)
    if len(models) > 1:
        shown = "; ".join(f"{kind}/{dtype}: {', '.join(users)}" for (kind, dtype), users in models.items())
        config.add(
            [
                Finding(
                    f"the Servers load different models ({shown}): a prefill Server's KV cache only fits a decode "
                    "Server of the same model",
                    fix="give every Server the same weights",
                )
            ],
            relaxed,
        )
    checks = [folder.check("weights", SOURCE_DIR, relaxed, "no Server names modelWeightPath")]
    if config.seen:
        checks.append(config.check("weights-config", SOURCE_CONFIG, relaxed, ""))
    return checks


@dataclass
class _Tally:
    """One check's findings over several folders: the worst status, what was seen, the fixes."""

    status: Status = Status.PASS
    seen: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    relaxable: bool = False

    def add(self, findings: list[Finding], relaxed: bool, prefix: str = "", ok: str = "ok") -> Status:
        status = _outcome(findings, relaxed)
        self.status = max(self.status, status, key=_rank)
        self.seen.append(prefix + ("; ".join(f.text for f in findings) or ok))
        self.fixes += [f.fix for f in findings if f.fix and f.fix not in self.fixes]
        self.relaxable |= any(f.relaxable for f in findings)
        return status

    def check(self, name: str, source: str, relaxed: bool, empty: str) -> Check:
        fixes = list(self.fixes)
        if self.relaxable and not relaxed:
            fixes.append("or set MINDIE_CHECK_INPUTFILES_PERMISSION=0, with which MindIE only prints owner and mode")
        return Check(name, self.status, "; ".join(self.seen) or empty, "; ".join(fixes), source)


def _rank(status: Status) -> int:
    return {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}[status]


def _config(item: Weights, uid: int, relaxed: bool, tally: _Tally) -> tuple[str | None, str | None] | None:
    """Adds config.json's findings to `tally`; returns its (model_type, torch_dtype) when it was read."""
    config = Path(item.path) / "config.json"
    path = str(config)
    findings = safe_path_findings(path, False, _FILE_LIMIT, uid)
    if not findings and config.resolve().stat().st_size > _CONFIG_BYTES:
        findings.append(Finding(f"{path} is larger than MindIE's 500 MB limit", fix=_CONFIG))
    if _outcome(findings, relaxed) is Status.FAIL:
        tally.add(findings, relaxed)
        return None
    try:
        with config.open("rb") as handle:
            document = json.loads(handle.read(_CONFIG_BYTES))
    except (OSError, ValueError) as exc:
        tally.add([Finding(f"{path} is not JSON MindIE can read ({exc})", fix=_CONFIG)], relaxed)
        return None
    if not isinstance(document, dict):
        tally.add([Finding(f"{path} is not a JSON object", fix=_CONFIG)], relaxed)
        return None
    kind, dtype = document.get("model_type"), document.get("torch_dtype")
    if not isinstance(kind, str) or not kind:
        findings.append(Finding(f"{path} has no model_type, which MindIE's model router needs", fix=_CONFIG))
    if dtype is not None and dtype not in _DTYPES:
        findings.append(
            Finding(
                f"{path}: torch_dtype {dtype!r} is not float16 or bfloat16, the only ones MindIE runs",
                fix="convert the weights to float16 or bfloat16",
            )
        )
    if dtype is None:
        findings.append(Finding(f"{path} has no torch_dtype (the model's default is used)", harmless=True))
    positions = document.get("max_position_embeddings")
    if isinstance(positions, int) and item.max_seq_len is not None and item.max_seq_len > positions:
        # MindIE-LLM router_impl.py:236 warns that the accuracy may be affected (MIE04E13030A).
        findings.append(
            Finding(
                f"maxSeqLen {item.max_seq_len} is more than the model's max_position_embeddings {positions}: "
                "MindIE warns that the accuracy may be affected",
                fix="lower maxSeqLen (or MINDIE_MAX_SEQ_LEN) to the model's max_position_embeddings",
                harmless=True,
            )
        )
    shown = f"{path}: model_type {kind!r}, torch_dtype {dtype!r}"
    tally.add(findings, relaxed, prefix="" if not findings else shown + "; ", ok=shown)
    return (kind if isinstance(kind, str) else None, dtype)
