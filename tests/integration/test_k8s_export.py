"""`supervisor-pd export kubernetes` as a user runs it: configs/k8s is its output, flags and
settings reach the manifests, a bad flag is one line and exit 2."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from supervisor_pd import cli
from tests.helpers import REPO, base_env, listener, run_cli

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")

# Each checked-in file and the arguments that make it.
GENERATED = {
    "configs/k8s/800i-a2.yaml": ["--simulate", "800i-a2"],
    "configs/k8s/800i-a3.yaml": ["--simulate", "800i-a3"],
    "configs/k8s/scale-out/deployment.yaml": ["--simulate", "800i-a2", "--scale-out"],
}


def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as base_env's: no SUPERVISOR_PD_*, MindIE or Ascend variables."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in base_env(tmp_path).items():
        monkeypatch.setenv(name, value)


def test_the_checked_in_manifests_are_the_commands_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in this process, one after the other on one state folder (one simulated host per
    profile), as `supervisor-pd export kubernetes ARGS` would in a clean environment."""
    clean_env(tmp_path, monkeypatch)
    drifted = []
    for name, args in GENERATED.items():
        code = cli.main(["export", "kubernetes", *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert err == "", f"warnings while exporting {name}: {err}"
        checked_in = (REPO / name).read_text()
        if out != checked_in:
            command = " ".join(["supervisor-pd export kubernetes", *args, "--output", name])
            diff = difflib.unified_diff(checked_in.splitlines(), out.splitlines(), name, "export", lineterm="", n=1)
            drifted.append(
                f"{name} differs from the exporter's output; regenerate it with\n    {command}\n"
                + "\n".join(list(diff)[:40])
            )
    assert not drifted, "\n\n".join(drifted) + "\n\n(in an environment without SUPERVISOR_PD_* or MINDIE_* variables)"


def test_the_settings_and_flags_reach_the_manifest_and_a_port_taken_here_does_not_matter(tmp_path: Path) -> None:
    taken = listener()  # the pod has its own network: a port in use on this machine is free there
    port = taken.getsockname()[1]
    target = tmp_path / "out" / "mindie.yaml"
    env = {**base_env(tmp_path), "SUPERVISOR_PD_GRACE_SECONDS": "100", "SUPERVISOR_PD_READY_SECONDS": "600"}
    try:
        args = ["export", "kubernetes", "--simulate", "800i-a3", "--api-port", str(port), "--output", str(target)]
        done = run_cli(args, env)
    finally:
        taken.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    text = target.read_text()
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    spec = objects[("Deployment", "mindie-server")]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port, "predict": 1025}
    variables = {item["name"]: item.get("value") for item in container["env"]}
    assert (variables["SUPERVISOR_PD_API_PORT"], variables["SUPERVISOR_PD_GRACE_SECONDS"]) == (str(port), "100")
    assert spec["terminationGracePeriodSeconds"] == 120
    assert container["startupProbe"]["failureThreshold"] == 66
    assert container["resources"]["limits"]["huawei.com/Ascend910"] == 16
    assert f"#   supervisor-pd export kubernetes --simulate 800i-a3 --api-port {port}\n" in text


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--replicas", "0", "--scale-out"], "--replicas: "),
        (["--replicas", "two", "--scale-out"], "--replicas: "),
        (["--replicas", "2"], "--replicas: "),
        (["--api-port", "80"], "--api-port: "),
        (["--output", "{tmp}"], "--output: "),
        (["--conf-dir", "{tmp}/none"], "{tmp}/none: "),
    ],
)
def test_a_bad_flag_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (the command's own code path, minus an interpreter start per case)."""
    clean_env(tmp_path, monkeypatch)
    target = tmp_path / "out.yaml"
    filled = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--output" not in filled:
        filled += ["--output", str(target)]
    code = cli.main(["export", "kubernetes", "--simulate", "800i-a2", *filled])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith(f"supervisor-pd: error: {where.replace('{tmp}', str(tmp_path))}"), err
    assert err.count("\n") == 1
    assert not target.exists()
