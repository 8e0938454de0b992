"""Every input a user or a client can get wrong, and the answer it must get.

- CLI cases run `supervisor-pd plan` (or `run`) on the simulated 800I A2 with a copy of the sample
  configs made bad as the case says. Each must end with exit code 2 and one line on stderr that
  holds every listed word: no traceback, nothing on stdout, and nothing in the case's folder
  created, changed or removed (the output folder stays absent or as it was, the config folder as
  it was; only the state folder, where --simulate builds its host, may change)
  (tests/integration/test_bad_inputs.py).
- HTTP cases send their bytes as they are to supervisor_pd's port on a running simulated stack.
  Each must get the listed status with a JSON error holding every listed word, and the port must
  keep serving (tests/e2e/test_bad_http_inputs.py). `parser=True` marks a request aiohttp's HTTP
  parser refuses before the application sees it: a plain-text 400, and the connection is closed.
- Slow-client cases hold connections open in a bad state while probes must still be answered
  within a bound (tests/e2e/test_bad_http_inputs.py).

In CLI cases `{tmp}` in a variable, flag or link target stands for the case's own folder (the
config folder is `{tmp}/conf` unless the case names it otherwise) and `{predict}` for the
Coordinator's predict port in that folder's ms_coordinator.json.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor_pd.confdir import MAX_INPUT_BYTES
from tests.helpers import SAMPLE_CONF

TOKEN = "bad-inputs-corpus-token"
MIB = 1 << 20
# The largest request body the stack accepts: the sample ms_coordinator.json's body_limit (MB).
BODY_LIMIT = json.loads((SAMPLE_CONF / "ms_coordinator.json").read_text())["request_limit"]["body_limit"] * MIB

CONFIG = "config files"
ENV = "environment"
FLAGS = "flags"


# --- CLI cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What a CLI case makes bad, and how the report names it."""

    what: str
    files: Callable[[Path], None] | None = None  # applied to the copy of the sample configs
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    conf_name: str = "conf"
    conf_flag: bool = True  # False: the config folder is chosen by a variable, not --conf-dir


@dataclass(frozen=True)
class CliCase:
    id: str
    category: str
    change: Change
    words: tuple[str, ...]
    command: str = "plan"
    root_reads_it: bool = False  # chmod 000 stops all but root: as root, run without its power to read any file


def cli(
    id: str, category: str, change: Change, *words: str, command: str = "plan", root_reads_it: bool = False
) -> CliCase:
    return CliCase(id, category, change, words, command, root_reads_it)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} chars)"


def _walk(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding the last step of `path` (`a.b[0].c`) and that step."""
    steps: list[str | int] = []
    for part in path.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        steps += [name] if name else []
        steps += [int(index) for index in indexes if index]
    for step in steps[:-1]:
        data = data[step]
    return data, steps[-1]


def _json_change(name: str, what: str, change: Callable[[Any], None]) -> Change:
    def apply(conf: Path) -> None:
        data = json.loads((conf / name).read_text())
        change(data)
        (conf / name).write_text(json.dumps(data, indent=2, ensure_ascii=False))

    return Change(f"{name}: {what}", apply)


def edit(name: str, path: str, value: Any, what: str | None = None) -> Change:
    def change(data: Any) -> None:
        parent, step = _walk(data, path)
        parent[step] = value

    return _json_change(name, f"{path} = {what or _short(value)}", change)


def drop(name: str, path: str) -> Change:
    def change(data: Any) -> None:
        parent, step = _walk(data, path)
        del parent[step]

    return _json_change(name, f"{path} removed", change)


def write(name: str, data: bytes, what: str) -> Change:
    return Change(f"{name}: {what}", lambda conf: (conf / name).write_bytes(data))


def remove(name: str) -> Change:
    return Change(f"{name} missing", lambda conf: (conf / name).unlink())


def symlink(name: str, target: str, what: str) -> Change:
    """`name` becomes a link to `target`; a target under {tmp} gets the file itself, so it resolves."""

    def apply(conf: Path) -> None:
        destination = Path(target.replace("{tmp}", str(conf.parent)))
        if "{tmp}" in target:
            destination.parent.mkdir(parents=True, exist_ok=True)
            (conf / name).rename(destination)
        else:
            (conf / name).unlink()
        (conf / name).symlink_to(destination)

    return Change(f"{name}: {what}", apply)


def link_loop(name: str) -> Change:
    def apply(conf: Path) -> None:
        (conf / name).unlink()
        (conf / name).symlink_to("loop.json")
        (conf / "loop.json").symlink_to(name)

    return Change(f"{name}: a link loop ({name} -> loop.json -> {name})", apply)


def sparse(name: str, size: int, what: str) -> Change:
    def apply(conf: Path) -> None:
        with (conf / name).open("r+b") as handle:
            handle.truncate(size)  # sparse: costs no disk and no time

    return Change(f"{name}: {what} (a sparse file)", apply)


def folder_instead(name: str) -> Change:
    def apply(conf: Path) -> None:
        (conf / name).unlink()
        (conf / name).mkdir()

    return Change(f"{name} is a folder", apply)


def fifo_instead(name: str) -> Change:
    def apply(conf: Path) -> None:
        (conf / name).unlink()
        os.mkfifo(conf / name)

    return Change(f"{name} is a named pipe (opening it for reading would block)", apply)


def unreadable(name: str = "") -> Change:
    return Change(f"{name or 'the config folder'} chmod 000", lambda conf: (conf / name).chmod(0))


def conf_named(name: str, then: Change) -> Change:
    return Change(f"config folder named {name!r}; {then.what}", then.files, conf_name=name)


def variables(**env: str) -> Change:
    shown = " ".join(f"{key}={value!r}" if not value.isprintable() else f"{key}={value}" for key, value in env.items())
    return Change(shown, env=env)


def conf_from(variable: str, value: str, files: Callable[[Path], None] | None = None) -> Change:
    return Change(f"{variable}={value!r}", files, env={variable: value}, conf_flag=False)


def flags(*args: str) -> Change:
    return Change(" ".join(args), args=args)


def server_files(change: Callable[[dict[str, Any], int], None], what: str) -> Change:
    """config1..4.json with MINDIE_MS_GEN_SERVER_PORT=false, each changed by `change(data, n)`."""

    def apply(conf: Path) -> None:
        template = json.loads((conf / "config.json").read_text())
        for n in range(1, 5):
            data = json.loads(json.dumps(template))
            data["ServerConfig"].update(
                port=3000 + n, managementPort=3100 + n, metricsPort=3200 + n, interCommPort=3300 + n
            )
            change(data, n)
            (conf / f"config{n}.json").write_text(json.dumps(data, indent=2))

    return Change(f"MINDIE_MS_GEN_SERVER_PORT=false; {what}", apply, env={"MINDIE_MS_GEN_SERVER_PORT": "false"})


def _server_port(value: int, only: int) -> Callable[[dict[str, Any], int], None]:
    def change(data: dict[str, Any], n: int) -> None:
        if n == only:
            data["ServerConfig"]["port"] = value

    return change


MODEL = "BackendConfig.ModelDeployConfig.ModelConfig[0]"
TOKEN_FILE = "SUPERVISOR_PD_API_TOKEN_FILE"


def _bad_token_file(conf: Path) -> None:
    (conf.parent / "token").write_bytes(b"\xff\xfe not text\n")


def _state_file(conf: Path) -> None:
    (conf.parent / "state-file").write_text("a file where the state folder should be\n")


def _foreign_output(conf: Path) -> None:
    (conf.parent / "out").mkdir()
    (conf.parent / "out" / "notes.txt").write_text("someone else's file\n")


def _file_at(name: str) -> Callable[[Path], None]:
    return lambda conf: (conf.parent / name).write_text("not a folder\n")


# fmt: off
CLI_CASES: list[CliCase] = [
    # --- the config folder: JSON that does not parse ---
    cli("json-truncated", CONFIG, write("config.json", b'{"ServerConfig": ', "cut off mid-object"), "config.json", "not valid JSON", "line 1"),
    cli("json-trailing-comma", CONFIG, write("ms_controller.json", b'{"deploy_mode": "x",}', "a trailing comma"), "ms_controller.json", "not valid JSON", "trailing comma"),
    cli("json-top-level-array", CONFIG, write("ms_coordinator.json", b"[1, 2]", "a JSON array, not an object"), "ms_coordinator.json", "JSON object"),
    cli("json-empty-file", CONFIG, write("config.json", b"", "an empty file (0 bytes)"), "config.json", "not valid JSON", "empty"),
    cli("json-not-utf8", CONFIG, write("config.json", b'\xff\xfe{"a": 1}', "bytes that are not UTF-8"), "config.json", "not valid JSON"),
    cli("json-nan", CONFIG, write("ms_controller.json", b'{"default_p_rate": NaN}', "NaN, which JSON has not"), "ms_controller.json", "not valid JSON"),
    cli("json-deep-nesting", CONFIG, write("config.json", b"[" * 100_000, "100000 nested arrays"), "config.json", "not valid JSON", "depth"),
    # --- wrong types ---
    cli("type-port-string", CONFIG, edit("config.json", "ServerConfig.port", "1025"), "config.json: ServerConfig.port", "valid integer", "'1025'"),
    cli("type-bool-string", CONFIG, edit("config.json", "ServerConfig.httpsEnabled", "false"), "ServerConfig.httpsEnabled", "valid boolean"),
    cli("type-world-size-float", CONFIG, edit("config.json", f"{MODEL}.worldSize", 2.5), "ModelConfig[0].worldSize", "valid integer"),
    cli("type-list-is-object", CONFIG, edit("config.json", "BackendConfig.ModelDeployConfig.ModelConfig", {}), "ModelDeployConfig.ModelConfig", "valid list"),
    cli("type-section-is-list", CONFIG, edit("ms_coordinator.json", "http_config", []), "ms_coordinator.json: http_config", "valid dictionary"),
    cli("type-rate-string", CONFIG, edit("ms_controller.json", "default_p_rate", "1"), "ms_controller.json: default_p_rate", "valid integer"),
    cli("type-port-bool", CONFIG, edit("ms_controller.json", "http_server.port", True), "ms_controller.json: http_server.port", "valid integer"),
    # --- missing fields and files ---
    cli("missing-metrics-port", CONFIG, drop("config.json", "ServerConfig.metricsPort"), "config.json: ServerConfig.metricsPort", "required but missing"),
    cli("missing-predict-port", CONFIG, drop("ms_coordinator.json", "http_config.predict_port"), "http_config.predict_port", "required but missing"),
    cli("missing-deploy-mode", CONFIG, drop("ms_controller.json", "deploy_mode"), "ms_controller.json: deploy_mode", "required but missing"),
    cli("missing-backend-section", CONFIG, drop("config.json", "BackendConfig"), "config.json: BackendConfig", "required but missing"),
    cli("missing-coordinator-file", CONFIG, remove("ms_coordinator.json"), "ms_coordinator.json", "is missing"),
    # --- values out of range ---
    cli("huge-world-size", CONFIG, edit("config.json", f"{MODEL}.worldSize", 2**40), "worldSize", "less than or equal to 128"),
    cli("huge-int-beyond-64-bit", CONFIG, edit("config.json", "BackendConfig.ModelDeployConfig.maxSeqLen", 10**30), "maxSeqLen", "valid integer"),
    cli("huge-controller-port", CONFIG, edit("ms_controller.json", "http_server.port", 2**32), "http_server.port", "not an allowed port"),
    cli("negative-controller-port", CONFIG, edit("ms_controller.json", "http_server.port", -1), "http_server.port", "-1 is not an allowed port"),
    cli("negative-coordinator-port", CONFIG, edit("ms_coordinator.json", "http_config.predict_port", "-1"), "http_config.predict_port", "port number written as a string"),
    cli("negative-server-port", CONFIG, server_files(_server_port(-1, only=3), "config3.json: ServerConfig.port = -1"), "config3.json: ServerConfig.port", "-1 is not an allowed port"),
    cli("giant-model-name", CONFIG, edit("config.json", f"{MODEL}.modelName", "m" * MIB, "'m' x 1 MiB"), "modelName", "at most 256 characters"),
    cli("giant-ip-string", CONFIG, edit("ms_coordinator.json", "http_config.predict_ip", "1" * MIB, "'1' x 1 MiB"), "http_config.predict_ip", "not an IPv4 address"),
    # --- control characters and non-ASCII text in names and paths ---
    cli("model-path-newline", CONFIG, edit("config.json", f"{MODEL}.modelWeightPath", "/data/llama3-8b\n"), "modelWeightPath", "control characters", "\\n"),
    cli("model-name-escape", CONFIG, edit("config.json", f"{MODEL}.modelName", "llama\x1b[31m模型"), "modelName", "control characters", "\\x1b"),
    cli("conf-dir-control-chars", CONFIG, conf_named("conf\n\x1b[31m配置", remove("ms_controller.json")), "conf\\n\\x1b[31m配置/ms_controller.json", "is missing"),
    cli("conf-dir-env-control-chars", CONFIG, conf_from("SUPERVISOR_PD_CONF_DIR", "{tmp}/nowhere\t\x1b[2J"), "nowhere\\t\\x1b[2J", "does not exist", "SUPERVISOR_PD_CONF_DIR"),
    # --- links, sizes, file kinds, permissions ---
    cli("link-outside-folder", CONFIG, symlink("config.json", "{tmp}/elsewhere/config.json", "a link to a file outside the folder"), "config.json", "outside the config folder"),
    cli("link-to-etc-passwd", CONFIG, symlink("ms_controller.json", "/etc/passwd", "a link to /etc/passwd"), "ms_controller.json", "outside the config folder"),
    cli("link-dangling", CONFIG, symlink("ms_coordinator.json", "gone.json", "a link to a file that is not there"), "ms_coordinator.json", "does not exist"),
    cli("link-loop", CONFIG, link_loop("config.json"), "config.json", "cannot be resolved", "loop"),
    cli("size-200-mib", CONFIG, sparse("config.json", 200 * MIB, "200 MiB"), "config.json", "200 MiB", "100 MiB are refused"),
    cli("size-limit-plus-one", CONFIG, sparse("ms_controller.json", MAX_INPUT_BYTES + 1, "the 100 MiB limit + 1 byte"), "ms_controller.json", f"{MAX_INPUT_BYTES + 1} bytes", "100 MiB are refused"),
    cli("folder-not-file", CONFIG, folder_instead("config.json"), "config.json", "not a regular file"),
    cli("fifo-not-file", CONFIG, fifo_instead("ms_coordinator.json"), "ms_coordinator.json", "not a regular file"),
    cli("unreadable-file", CONFIG, unreadable("config.json"), "config.json", "Permission denied", root_reads_it=True),
    cli("unreadable-folder", CONFIG, unreadable(), "conf", "Permission denied", root_reads_it=True),
    cli("conf-dir-is-a-file", CONFIG, conf_from("CONFIG_FROM_CONFIG_FILE_PATH", "{tmp}/plain-file", _file_at("plain-file")), "plain-file", "is not a folder", "CONFIG_FROM_CONFIG_FILE_PATH"),
    # --- variables ---
    cli("rates-zero-and-one", ENV, variables(MINDIE_MS_P_RATE="0", MINDIE_MS_D_RATE="1"), "MINDIE_MS_P_RATE, MINDIE_MS_D_RATE", "both must be 0"),
    cli("rates-need-more-servers", ENV, variables(MINDIE_MS_P_RATE="3", MINDIE_MS_D_RATE="2"), "MINDIE_MS_P_RATE", "more than the 4 Servers"),
    cli("rate-negative", ENV, variables(MINDIE_MS_P_RATE="-1"), "MINDIE_MS_P_RATE", "greater than or equal to 0"),
    cli("rate-huge", ENV, variables(MINDIE_MS_D_RATE="99999999999999999999"), "MINDIE_MS_D_RATE", "less than or equal to 767"),
    cli("visible-device-absent", ENV, variables(ASCEND_VISIBLE_DEVICES="9"), "ASCEND_VISIBLE_DEVICES", "names NPU 9", "not on this host"),
    cli("visible-devices-huge-range", ENV, variables(ASCEND_VISIBLE_DEVICES="0-99999999999"), "ASCEND_VISIBLE_DEVICES", "out of range", "0 to 1023"),
    cli("visible-devices-backwards", ENV, variables(ASCEND_VISIBLE_DEVICES="3-1"), "ASCEND_VISIBLE_DEVICES", "runs backwards"),
    cli("rt-visible-out-of-range", ENV, variables(ASCEND_RT_VISIBLE_DEVICES="0,8"), "ASCEND_RT_VISIBLE_DEVICES", "names logical id 8", "ids 0..7"),
    cli("rt-visible-unordered", ENV, variables(ASCEND_RT_VISIBLE_DEVICES="1,0"), "ASCEND_RT_VISIBLE_DEVICES", "ascending order"),
    cli("api-port-not-a-number", ENV, variables(SUPERVISOR_PD_API_PORT="abc"), "SUPERVISOR_PD_API_PORT", "valid integer", "'abc'"),
    cli("api-port-too-high", ENV, variables(SUPERVISOR_PD_API_PORT="70000"), "SUPERVISOR_PD_API_PORT", "less than or equal to 65535"),
    cli("gen-server-port-maybe", ENV, variables(MINDIE_MS_GEN_SERVER_PORT="maybe"), "MINDIE_MS_GEN_SERVER_PORT", "must be true or false"),
    cli("grace-negative", ENV, variables(SUPERVISOR_PD_GRACE_SECONDS="-1"), "SUPERVISOR_PD_GRACE_SECONDS", "greater than 0", command="run"),
    cli("grace-nan", ENV, variables(SUPERVISOR_PD_GRACE_SECONDS="nan"), "SUPERVISOR_PD_GRACE_SECONDS", "greater than 0", command="run"),
    cli("pod-ip-not-an-ip", ENV, variables(POD_IP="not-an-ip"), "POD_IP", "IPv4", "'not-an-ip'"),
    cli("token-file-missing", ENV, variables(**{TOKEN_FILE: "{tmp}/no-such-token"}), TOKEN_FILE, "cannot be read", "No such file", command="run"),
    cli("token-file-endless", ENV, variables(**{TOKEN_FILE: "/dev/zero"}), TOKEN_FILE, "more than 4096 bytes", command="run"),
    cli("token-file-not-text", ENV, Change(f"{TOKEN_FILE} holding bytes that are not UTF-8", _bad_token_file, env={TOKEN_FILE: "{tmp}/token"}), TOKEN_FILE, "UTF-8", command="run"),
    cli("api-hosts-not-names", ENV, variables(SUPERVISOR_PD_API_HOSTS="pd.example, evil/x"), "SUPERVISOR_PD_API_HOSTS", "'evil/x' is not a host name"),
    cli("server-command-missing", ENV, variables(SUPERVISOR_PD_SERVER_COMMAND="{tmp}/no-such-server"), "SUPERVISOR_PD_SERVER_COMMAND", "not found on PATH", command="run"),
    cli("server-command-unclosed-quote", ENV, variables(SUPERVISOR_PD_SERVER_COMMAND='mindie_llm_server "--x'), "SUPERVISOR_PD_SERVER_COMMAND", "not a command line", "quotation", command="run"),
    cli("state-dir-is-a-file", ENV, Change("SUPERVISOR_PD_STATE_DIR names a regular file", _state_file, env={"SUPERVISOR_PD_STATE_DIR": "{tmp}/state-file"}), "SUPERVISOR_PD_STATE_DIR", "cannot hold supervisor-pd's state", "Not a directory"),
    # --- flags ---
    cli("flag-api-port-not-a-number", FLAGS, flags("--api-port", "abc"), "--api-port", "valid integer", "'abc'"),
    cli("flag-api-port-below-1024", FLAGS, flags("--api-port", "80"), "--api-port", "greater than or equal to 1024"),
    cli("flag-api-port-taken-by-plan", FLAGS, Change("--api-port set to the Coordinator's predict port", args=("--api-port", "{predict}")), "predict_port", "already given to supervisor api_port"),
    cli("flag-output-is-the-input", FLAGS, flags("--output", "{tmp}/conf"), "--output", "holds the input config folder"),
    cli("flag-output-is-a-file", FLAGS, Change("--output names a regular file", _file_at("out-file"), args=("--output", "{tmp}/out-file")), "--output", "exists and is not a folder"),
    cli("flag-output-foreign-folder", FLAGS, Change("--output names a folder with someone else's files", _foreign_output), "--output", "not empty and was not written by supervisor-pd"),
    cli("flag-output-with-a-space", FLAGS, flags("--output", "{tmp}/new out"), "SUPERVISOR_PD_OUTPUT_DIR (--output)", "holds ' '", "letters, digits"),
    cli("flag-output-too-long", FLAGS, flags("--output", "{tmp}/" + "o" * 240), "--output", "characters", "at most 256"),
]
# fmt: on


# --- HTTP cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCase:
    id: str
    category: str
    what: str
    request: bytes
    status: int
    words: tuple[str, ...]
    parser: bool = False  # refused by aiohttp's HTTP parser: a plain-text 400 before any handler runs


def http(id: str, category: str, what: str, request: bytes, status: int, *words: str, parser: bool = False) -> HttpCase:
    return HttpCase(id, category, what, request, status, words, parser)


def req(method: str, target: str | bytes, *headers: str | bytes, body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request, byte for byte; Content-Length is added for a body."""
    line = method.encode() + b" " + (target if isinstance(target, bytes) else target.encode()) + b" HTTP/1.1\r\n"
    head = [b"Host: 127.0.0.1", b"Connection: close"]
    head += [h if isinstance(h, bytes) else h.encode() for h in headers]
    if body is not None:
        head.append(b"Content-Length: %d" % len(body))
    return line + b"".join(h + b"\r\n" for h in head) + b"\r\n" + (body or b"")


def chunked(total: int) -> bytes:
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(total // len(piece) + 1))
    return (
        req("POST", "/v1/completions", "Content-Type: application/json", "Transfer-Encoding: chunked")
        + chunks
        + b"0\r\n\r\n"
    )


JSON = "Content-Type: application/json"
AUTH = f"Authorization: Bearer {TOKEN}"
CHAT = "/v1/chat/completions"
LOGS = "/v1/processes/server-1/logs"
BODIES, HEADERS, PATHS, METHODS, TOKENS, QUERIES, ENCODING, COMPRESSED = (
    "HTTP bodies", "HTTP headers", "HTTP paths", "HTTP methods", "HTTP tokens", "HTTP queries", "HTTP encoding",
    "HTTP compressed bodies",
)  # fmt: skip
# 16 KiB of gzip that inflates to 16 MiB of zeros (bench/attack_bench.py sends 1 MiB -> 1 GiB).
GZIP_BOMB = gzip.compress(b"\0" * (16 << 20), compresslevel=9)

# fmt: off
HTTP_CASES: list[HttpCase] = [
    # --- bodies ---
    http("chat-not-json", BODIES, "chat body '{not json'", req("POST", CHAT, JSON, body=b"{not json"), 400, "not valid JSON"),
    http("generate-not-json", BODIES, "MindIE /generate body cut off", req("POST", "/generate", JSON, body=b'{"inputs": '), 400, "not valid JSON"),
    http("chat-deep-nesting", BODIES, "chat body of 100000 nested arrays", req("POST", CHAT, JSON, body=b"[" * 100_000), 400, "not valid JSON"),
    http("tokenizer-deep-nesting", BODIES, "/v1/tokenizer body of 100000 nested arrays (passed to the Coordinator)", req("POST", "/v1/tokenizer", JSON, body=b"[" * 100_000), 400, "not valid JSON"),
    http("chat-not-utf8", BODIES, "chat body with bytes that are not UTF-8", req("POST", CHAT, JSON, body=b'\xff\xfe{"messages": []}'), 400, "not valid JSON"),
    http("chat-empty-body", BODIES, "chat with an empty body (passed to the Coordinator)", req("POST", CHAT, JSON, body=b""), 400, "not valid JSON"),
    http("chat-json-null", BODIES, "chat body 'null' (passed to the Coordinator)", req("POST", CHAT, JSON, body=b"null"), 422, "JSON object"),
    http("body-over-limit", BODIES, "completions body 1 MiB + 16 bytes (limit 1 MiB)", req("POST", "/v1/completions", JSON, body=b'{"prompt":"' + b"x" * BODY_LIMIT + b'"}'), 413, "Too Large"),
    http("content-length-1-tb", BODIES, "Content-Length of 1 TB, 2 MiB sent", req("POST", "/v1/completions", JSON, "Content-Length: 1000000000000") + b"x" * (2 * MIB), 413, "Too Large"),
    http("chunked-over-limit", BODIES, "chunked body of 2.5 MiB", chunked(5 * MIB // 2), 413, "Too Large"),
    # --- headers ---
    http("header-100-kib", HEADERS, "one 100 KiB header", req("GET", "/livez", b"X-Big: " + b"a" * 100 * 1024), 400, "more than 8190 bytes", parser=True),
    http("headers-300", HEADERS, "300 headers", req("GET", "/livez", *(f"X-H{i}: v" for i in range(300))), 400, "Too many headers", parser=True),
    http("url-100-kib", HEADERS, "a 100 KiB URL", req("GET", "/livez?" + "a" * 100 * 1024), 400, "more than 8190 bytes", parser=True),
    http("header-nul", HEADERS, "a NUL byte in a header value", req("GET", "/livez", b"X-A: a\x00b"), 400, "Invalid header value char", parser=True),
    http("content-length-twice", HEADERS, "two different Content-Length headers", req("POST", CHAT, "Content-Length: 5", "Content-Length: 7") + b"hello", 400, "Content-Length", parser=True),
    http("chunk-size-garbage", HEADERS, "chunked body with chunk size 'zz'", req("POST", CHAT, "Transfer-Encoding: chunked") + b"zz\r\n", 400, "chunk", parser=True),
    # --- paths ---
    http("traversal-encoded", PATHS, "/v1/processes/..%2F..%2Fetc%2Fpasswd/logs", req("GET", "/v1/processes/..%2F..%2Fetc%2Fpasswd/logs", AUTH), 404, "no process named '../../etc/passwd'"),
    http("traversal-plain", PATHS, "/v1/processes/../../etc/passwd/logs", req("GET", "/v1/processes/../../etc/passwd/logs", AUTH), 404, "Not Found"),
    http("traversal-root", PATHS, "/../../etc/passwd", req("GET", "/../../etc/passwd"), 404, "Not Found"),
    http("traversal-double-encoded", PATHS, "/v1/processes/%252e%252e%252f/logs", req("GET", "/v1/processes/%252e%252e%252f/logs", AUTH), 404, "no process named"),
    http("traversal-restart", PATHS, "POST /v1/processes/..%2F..%2Fv1%2Fdrain/restart with the token", req("POST", "/v1/processes/..%2F..%2Fv1%2Fdrain/restart", AUTH), 404, "no process named '../../v1/drain'"),
    http("unknown-process", PATHS, "/v1/processes/server-99", req("GET", "/v1/processes/server-99"), 404, "no process named 'server-99'", "known: server-1"),
    http("unknown-process-logs", PATHS, "/v1/processes/nope/logs", req("GET", "/v1/processes/nope/logs", AUTH), 404, "no process named 'nope'"),
    http("logs-without-token", TOKENS, "a process's logs on TCP without the token", req("GET", LOGS), 401, "bearer token"),
    http("unknown-check", PATHS, "/readyz/%1b[31mnope (an escape in the check name)", req("GET", "/readyz/%1b[31mnope"), 404, "no check named '?[31mnope'"),
    http("unknown-model", PATHS, "/v1/models/%00", req("GET", "/v1/models/%00"), 404, "does not exist"),
    http("unknown-path", PATHS, "/v2/nothing/here", req("GET", "/v2/nothing/here"), 404, "No route /v2/nothing/here"),
    # --- methods ---
    http("get-drain", METHODS, "GET /v1/drain", req("GET", "/v1/drain"), 405, "Method Not Allowed"),
    http("delete-status", METHODS, "DELETE /v1/status", req("DELETE", "/v1/status"), 405, "Method Not Allowed"),
    http("get-chat", METHODS, "GET /v1/chat/completions", req("GET", CHAT), 405, "GET is not allowed here"),
    http("put-restart", METHODS, "PUT /v1/processes/server-1/restart", req("PUT", "/v1/processes/server-1/restart", AUTH), 405, "Method Not Allowed"),
    http("unknown-method", METHODS, "BREW /livez", req("BREW", "/livez"), 400, "Invalid method", parser=True),
    # --- tokens ---
    http("token-missing", TOKENS, "POST /v1/drain without Authorization", req("POST", "/v1/drain"), 401, "valid bearer token"),
    http("token-wrong", TOKENS, "Bearer with a wrong token", req("POST", "/v1/drain", "Authorization: Bearer wrong"), 401, "valid bearer token"),
    http("token-wrong-scheme", TOKENS, "the right token with scheme Basic", req("POST", "/v1/drain", f"Authorization: Basic {TOKEN}"), 401, "valid bearer token"),
    http("token-no-scheme", TOKENS, "the right token with no scheme", req("POST", "/v1/processes/server-1/restart", f"Authorization: {TOKEN}"), 401, "valid bearer token"),
    http("token-empty", TOKENS, "'Bearer ' and nothing", req("POST", "/v1/drain", "Authorization: Bearer "), 401, "valid bearer token"),
    http("token-8-kib", TOKENS, "an 8000-byte token", req("POST", "/v1/drain", "Authorization: Bearer " + "t" * 8000), 401, "valid bearer token"),
    http("token-100-kib", TOKENS, "a 100 KiB token", req("POST", "/v1/drain", "Authorization: Bearer " + "t" * 100 * 1024), 400, "more than 8190 bytes", parser=True),
    http("token-not-utf8", TOKENS, "a token of bytes that are not UTF-8", req("POST", "/v1/drain", b"Authorization: Bearer \xff\xfe"), 401, "valid bearer token"),
    # --- query values ---
    http("tail-negative", QUERIES, "logs?tail=-1", req("GET", LOGS + "?tail=-1", AUTH), 400, "tail must be between 1 and 1000"),
    http("tail-zero", QUERIES, "logs?tail=0", req("GET", LOGS + "?tail=0", AUTH), 400, "tail must be between 1 and 1000"),
    http("tail-too-big", QUERIES, "logs?tail=1001", req("GET", LOGS + "?tail=1001", AUTH), 400, "tail must be between 1 and 1000"),
    http("tail-not-a-number", QUERIES, "logs?tail=abc", req("GET", LOGS + "?tail=abc", AUTH), 400, "whole numbers"),
    http("tail-5000-digits", QUERIES, "logs?tail=<5000 digits>", req("GET", LOGS + "?tail=" + "9" * 5000, AUTH), 400, "whole numbers"),
    http("after-not-a-number", QUERIES, "logs?after=x", req("GET", LOGS + "?after=x", AUTH), 400, "whole numbers"),
    http("after-negative", QUERIES, "logs?after=-1", req("GET", LOGS + "?after=-1", AUTH), 400, "after must be 0 or more"),
    # --- encoding ---
    http("path-raw-bytes", ENCODING, "raw bytes 0xff 0xfe in the path", req("GET", b"/\xff\xfe"), 400, "Invalid char in url", parser=True),
    http("path-encoded-bytes", ENCODING, "%FF%FE as a process name", req("GET", "/v1/processes/%FF%FE/logs", AUTH), 404, "no process named"),
    http("query-encoded-bytes", ENCODING, "logs?tail=%FF", req("GET", LOGS + "?tail=%FF", AUTH), 400, "whole numbers"),
    http("tls-hello", ENCODING, "a TLS ClientHello on the plain HTTP port", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, 400, "HTTPS", parser=True),
    http("not-http", ENCODING, "a line that is not HTTP", b"not http at all\r\n\r\n", 400, "Invalid method", parser=True),
    # --- compressed bodies: refused before a byte is read or inflated ---
    http("gzip-bomb", COMPRESSED, "chat body: 16 KiB of gzip that inflates to 16 MiB", req("POST", CHAT, JSON, "Content-Encoding: gzip", body=GZIP_BOMB), 415, "Content-Encoding 'gzip' is not accepted"),
    http("gzip-valid", COMPRESSED, "chat body: a valid small gzip JSON body", req("POST", CHAT, JSON, "Content-Encoding: gzip", body=gzip.compress(b'{"messages": []}')), 415, "send the request body uncompressed"),
    http("deflate", COMPRESSED, "completions body: deflate", req("POST", "/v1/completions", JSON, "Content-Encoding: deflate", body=zlib.compress(b'{"prompt": "x"}')), 415, "'deflate' is not accepted"),
    http("brotli", COMPRESSED, "generate body: Content-Encoding br", req("POST", "/generate", JSON, "Content-Encoding: br", body=b"\x0b\x02\x80hi\x03"), 415, "'br' is not accepted"),
    http("zstd", COMPRESSED, "chat body: Content-Encoding zstd", req("POST", CHAT, JSON, "Content-Encoding: zstd", body=b"\x28\xb5\x2f\xfd"), 415, "'zstd' is not accepted"),
    http("stacked", COMPRESSED, "chat body: Content-Encoding gzip, gzip", req("POST", CHAT, JSON, "Content-Encoding: gzip, gzip", body=gzip.compress(gzip.compress(b"{}"))), 415, "'gzip, gzip' is not accepted"),
    http("gzip-chunked", COMPRESSED, "chat body: gzip, chunked, 2 MiB announced", req("POST", CHAT, JSON, "Content-Encoding: gzip", "Transfer-Encoding: chunked") + b"%x\r\n" % len(GZIP_BOMB[:65536]) + GZIP_BOMB[:65536] + b"\r\n", 415, "not accepted"),
    http("gzip-on-get", COMPRESSED, "GET /v1/status with Content-Encoding gzip and a body", req("GET", "/v1/status", "Content-Encoding: gzip", body=gzip.compress(b"x")), 415, "not accepted"),
    http("gzip-on-control", COMPRESSED, "POST /v1/drain with a gzip body and the token", req("POST", "/v1/drain", AUTH, "Content-Encoding: gzip", body=gzip.compress(b"{}")), 415, "not accepted"),
    # --- JSON the Coordinator and supervisor_pd could read differently ---
    http("duplicate-key", BODIES, 'chat body with "n" twice', req("POST", CHAT, JSON, body=b'{"messages": [], "n": 1, "n": 2}'), 400, "`n` is given more than once"),
    http("duplicate-key-nested", BODIES, 'generate body with parameters.best_of twice', req("POST", "/generate", JSON, body=b'{"inputs": "x", "parameters": {"best_of": 1, "best_of": 3}}'), 400, "`best_of` is given more than once"),
    http("n-float", BODIES, "chat with n: 2.0", req("POST", CHAT, JSON, body=b'{"messages": [], "n": 2.0}'), 400, "`n` is not supported"),
    http("n-string", BODIES, 'chat with n: "2"', req("POST", CHAT, JSON, body=b'{"messages": [], "n": "2"}'), 400, "`n` is not supported"),
    http("best-of-float", BODIES, "completions with best_of: 3.0", req("POST", "/v1/completions", JSON, body=b'{"prompt": "x", "best_of": 3.0}'), 400, "`best_of` is not supported"),
    http("beam-one", BODIES, "completions with use_beam_search: 1", req("POST", "/v1/completions", JSON, body=b'{"prompt": "x", "use_beam_search": 1}'), 400, "`use_beam_search` is not supported"),
    http("beam-string", BODIES, 'completions with use_beam_search: "true"', req("POST", "/v1/completions", JSON, body=b'{"prompt": "x", "use_beam_search": "true"}'), 400, "`use_beam_search` is not supported"),
    http("logprobs-string", BODIES, 'chat with logprobs: "true"', req("POST", CHAT, JSON, body=b'{"messages": [], "logprobs": "true"}'), 400, "`logprobs` is not supported"),
    # --- the model: MindIE's Server checks it (422), the port fills in a missing one ---
    http("model-unknown-chat", BODIES, 'chat with model "nope"', req("POST", CHAT, JSON, body=b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}'), 422, "Got model nope, but not found in server"),
    http("model-unknown-completions", BODIES, 'completions with model "nope"', req("POST", "/v1/completions", JSON, body=b'{"model": "nope", "prompt": "x"}'), 422, "Not found given model"),
    http("model-not-a-string", BODIES, "chat with model 7", req("POST", CHAT, JSON, body=b'{"model": 7, "messages": [{"role": "user", "content": "x"}]}'), 422, "model must be string"),
    # --- the inference API's shape ---
    http("unknown-v1-path", PATHS, "/v1/embeddings (not served by MindIE's Coordinator)", req("POST", "/v1/embeddings", JSON, body=b"{}"), 404, "No route /v1/embeddings"),
]
# fmt: on


# --- slow clients ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlowCase:
    id: str
    what: str
    clients: int  # connections held in this state at once
    sends: bytes  # what each one sends
    pace: float  # seconds between its bytes; 0: all at once, then it goes quiet
    finish: bytes | None = None  # sent at the end, after which the client must get its own 200


# fmt: off
SLOW_CASES: list[SlowCase] = [
    SlowCase("slowloris-one-byte", "a client sending its headers one byte per 100 ms", 1, b"GET /livez HTTP/1.1\r\n", 0.1, b"Host: x\r\n\r\n"),
    SlowCase("unfinished-headers-x100", "100 connections whose headers never end", 100, b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Wait: ", 0),
    SlowCase("stalled-body", "a chat request whose body stops after 12 of 1000 bytes", 1, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"messages\":", 0),
]
# fmt: on
