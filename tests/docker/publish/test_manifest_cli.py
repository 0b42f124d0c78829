"""``toolkit manifest`` as a user runs it (``python -m toolkit``) against real registries.

Per-release images are put into the registries through the API, shaped like the seed's; the
command's lists are then read back through the API. Faults: the fault proxy double in front of
the real registry (500s), the registry killed mid-run, refused credentials, a missing release.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Result, run_toolkit
from tests.docker import registries as regs
from tests.docker.publish.conftest import TLSRegistry, TokenRegistry
from tests.doubles.fault_proxy import Fault, FaultProxyDouble
from toolkit.credentials import Credential, StaticCredentials
from toolkit.matrix import Build, build_matrix
from toolkit.mediatypes import MANIFEST_LIST_V2
from toolkit.registry import RegistryClient, RetryPolicy
from toolkit.versions import parse_versions

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, timeout=10)
SHARED = (
    "3.8.0rc1-windowsservercore",
    "3.8-rc-windowsservercore",
    "rc-windowsservercore",
    "3.8.0rc1",
    "3.8-rc",
    "rc",
)
VERSIONS = ("10.0.14393.3274", "10.0.17134.1069", "10.0.17763.805")


def _builds() -> list[Build]:
    """The 2019 seed's matrix: the 3.8-rc line alone (as the workspace fixture has it)."""
    seed = {"3.8-rc": json.loads((REPO / "versions.json").read_text())["3.8-rc"]}
    return build_matrix(parse_versions(json.dumps(seed), Path("versions.json")))


def seed(client: RegistryClient, repo: str, skip: str = "") -> None:
    for build in _builds():
        if build.release.key != skip:
            regs.put_windows_image(client, repo, build.tags[0], build.release.key)


def manifest(workspace: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    base = {"DOCKER_CONFIG": str(workspace / "no-docker-config")}
    return run_toolkit("manifest", *args, cwd=workspace, env={**base, **(env or {})})


def lists(client: RegistryClient, repo: str) -> dict[str, list[dict[str, str]] | None]:
    found: dict[str, list[dict[str, str]] | None] = {}
    for tag in SHARED:
        if client.manifest_digest(repo, tag) is None:
            found[tag] = None
            continue
        fetched = client.get_manifest(repo, tag)
        assert fetched.media_type == MANIFEST_LIST_V2
        found[tag] = [e["platform"] for e in fetched.json()["manifests"]]
    return found


def test_manifest_creates_then_leaves_alone(
    plain_registry: regs.RunningRegistry, repo: str, workspace: Path
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    target = f"{plain_registry.address}/{repo}"
    first = manifest(workspace, "--repo", target)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["created"] * 6
    assert [line.split()[1] for line in lines] == [f"{target}:{t}" for t in SHARED]
    assert all(line.endswith(f"[{', '.join(VERSIONS)}]") for line in lines)
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        found = lists(client, repo)
    for tag in SHARED:
        assert found[tag] == [
            {"architecture": "amd64", "os": "windows", "os.version": v} for v in VERSIONS
        ]
    again = manifest(workspace, "--repo", target, "--json")
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["ok"] is True
    assert [r["result"] for r in document["results"]] == ["unchanged"] * 6
    # 3 images x (manifest + config) + one list read per shared tag
    assert document["requests"] == 3 * 2 + 6
    entry = document["results"][0]["entries"][2]
    assert entry["tag"] == "3.8.0rc1-windowsservercore-1809"
    assert entry["platform"] == {
        "architecture": "amd64",
        "os": "windows",
        "os.version": VERSIONS[2],
    }


def test_selector_publishes_whole_lists(
    plain_registry: regs.RunningRegistry, repo: str, workspace: Path
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    done = manifest(workspace, "--repo", f"{plain_registry.address}/{repo}", "3.8-rc-*-1809")
    assert done.returncode == 0, done.stderr
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert len(lists(client, repo)["rc"] or []) == 3


def test_dry_run_writes_nothing(
    plain_registry: regs.RunningRegistry, repo: str, workspace: Path
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    done = manifest(workspace, "--repo", f"{plain_registry.address}/{repo}", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert {line.split()[0] for line in done.stdout.splitlines()} == {"would-create"}
    assert "nothing written" in done.stderr
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert set(lists(client, repo).values()) == {None}


def test_missing_release_fails_then_allow_partial(
    plain_registry: regs.RunningRegistry, repo: str, workspace: Path
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo, skip="ltsc2016")
    target = f"{plain_registry.address}/{repo}"
    failed = manifest(workspace, "--repo", target)
    assert failed.returncode == 12
    errors = [x for x in failed.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 7  # one per shared tag, then the run's
    assert errors[-1].startswith(f"error: 6 of 6 shared tag(s) of {target} not published: ")
    assert "not in the registry: 3.8.0rc1-windowsservercore-ltsc2016" in errors[0]
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert set(lists(client, repo).values()) == {None}
    partial = manifest(workspace, "--repo", target, "--allow-partial")
    assert partial.returncode == 0, partial.stderr
    assert "3.8.0rc1-windowsservercore-ltsc2016" in partial.stderr
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert [p["os.version"] for p in lists(client, repo)["rc"] or []] == list(VERSIONS[1:])


@pytest.fixture
def proxy(plain_registry: regs.RunningRegistry) -> Iterator[FaultProxyDouble]:
    double = FaultProxyDouble(plain_registry.address)
    double.start()
    yield double
    double.stop()


def test_500_then_success_is_retried(
    plain_registry: regs.RunningRegistry, proxy: FaultProxyDouble, repo: str, workspace: Path
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    proxy.faults = [
        Fault("GET", r"/manifests/3\.8\.0rc1-windowsservercore-1803$", times=2, status=500),
        Fault("PUT", r"/manifests/3\.8-rc$", times=1, status=503),
    ]
    done = manifest(workspace, "--repo", f"{proxy.address}/{repo}")
    assert done.returncode == 0, done.stderr
    statuses = [s for m, p, s in proxy.seen if p.endswith("/manifests/3.8-rc") and m == "PUT"]
    assert statuses == [503, 201]
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert all(v is not None and len(v) == 3 for v in lists(client, repo).values())


def test_registry_killed_mid_run_then_rerun_converges(
    fresh_registry: regs.RunningRegistry, repo: str, workspace: Path
) -> None:
    with RegistryClient(fresh_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    double = FaultProxyDouble(fresh_registry.address)
    # The registry dies just as the third list is about to be written.
    double.faults = [
        Fault(
            "PUT",
            r"/manifests/rc-windowsservercore$",
            times=1,
            status=502,
            hook=fresh_registry.kill,
        )
    ]
    double.start()
    try:
        cut = manifest(workspace, "--repo", f"{double.address}/{repo}", "--retries", "1")
    finally:
        double.stop()
    assert cut.returncode == 12
    assert "failed after 2 attempts" in cut.stderr
    assert "Traceback" not in cut.stderr
    fresh_registry.start()
    with RegistryClient(fresh_registry.address, retry=FAST) as client:
        before = lists(client, repo)
    assert before["3.8.0rc1-windowsservercore"] is not None
    assert before["rc-windowsservercore"] is None
    rerun = manifest(workspace, "--repo", f"{fresh_registry.address}/{repo}")
    assert rerun.returncode == 0, rerun.stderr
    results = [line.split()[0] for line in rerun.stdout.splitlines()]
    assert results == ["unchanged", "unchanged", "created", "created", "created", "created"]
    final = manifest(workspace, "--repo", f"{fresh_registry.address}/{repo}")
    assert [line.split()[0] for line in final.stdout.splitlines()] == ["unchanged"] * 6


# --- authentication --------------------------------------------------------------------------


def _docker_config(directory: Path, document: object) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(document), "utf-8")
    return {"DOCKER_CONFIG": str(directory)}


def test_tls_basic_auth_from_docker_config(
    tls_registry: TLSRegistry, repo: str, workspace: Path
) -> None:
    address = tls_registry.registry.address
    creds = StaticCredentials({address: Credential(tls_registry.user, tls_registry.password)})
    with RegistryClient(
        address,
        scheme="https",
        ca=tls_registry.ca,
        credentials=creds,
        actions="pull,push",
        retry=FAST,
    ) as client:
        seed(client, repo)
    auth = base64.b64encode(f"{tls_registry.user}:{tls_registry.password}".encode()).decode()
    env = _docker_config(workspace / "dc", {"auths": {address: {"auth": auth}}})
    target = f"https://{address}/{repo}"
    done = manifest(workspace, "--repo", target, "--registry-ca", str(tls_registry.ca), env=env)
    assert done.returncode == 0, done.stderr
    assert tls_registry.password not in done.stdout + done.stderr
    with RegistryClient(
        address, scheme="https", ca=tls_registry.ca, credentials=creds, retry=FAST
    ) as client:
        assert len(lists(client, repo)["3.8-rc"] or []) == 3


def test_token_auth_through_a_credential_helper(
    token_registry: TokenRegistry, repo: str, workspace: Path
) -> None:
    address = token_registry.registry.address
    creds = StaticCredentials({address: Credential(token_registry.user, token_registry.password)})
    with RegistryClient(address, credentials=creds, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    bin_dir = workspace / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testvault"
    answer = json.dumps(
        {"ServerURL": address, "Username": token_registry.user, "Secret": token_registry.password}
    )
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{answer}'\n")
    helper.chmod(0o755)
    env = _docker_config(workspace / "dc", {"credsStore": "testvault"})
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    before = len(token_registry.tokens.requests)
    done = run_toolkit("--debug", "manifest", "--repo", f"{address}/{repo}", cwd=workspace, env=env)
    assert done.returncode == 0, done.stderr
    assert token_registry.password not in done.stdout + done.stderr
    asked = token_registry.tokens.requests[before:]
    assert asked == [
        {"path": "/token", "user": token_registry.user, "scope": f"repository:{repo}:pull,push"}
    ]
    with RegistryClient(address, credentials=creds, retry=FAST) as client:
        assert len(lists(client, repo)["rc"] or []) == 3


def test_401_is_a_clear_error_and_writes_nothing(
    tls_registry: TLSRegistry, repo: str, workspace: Path
) -> None:
    address = tls_registry.registry.address
    creds = StaticCredentials({address: Credential(tls_registry.user, tls_registry.password)})
    with RegistryClient(
        address,
        scheme="https",
        ca=tls_registry.ca,
        credentials=creds,
        actions="pull,push",
        retry=FAST,
    ) as client:
        seed(client, repo)
    wrong = base64.b64encode(
        f"{tls_registry.user}:WrongSecret-{tls_registry.password[-6:]}x".encode()
    ).decode()
    env = _docker_config(workspace / "dc", {"auths": {address: {"auth": wrong}}})
    done = manifest(
        workspace,
        "--repo",
        f"https://{address}/{repo}",
        "--registry-ca",
        str(tls_registry.ca),
        env=env,
    )
    assert done.returncode == 12
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: registry {address}, repository {repo}, tag 3.8.0rc1-windowsservercore-ltsc2016: "
        f"manifest: unauthorized (UNAUTHORIZED: authentication required) "
        f"(the credentials for {address} were refused; run docker login {address})"
    ]
    with RegistryClient(
        address, scheme="https", ca=tls_registry.ca, credentials=creds, retry=FAST
    ) as client:
        assert set(lists(client, repo).values()) == {None}


def test_no_credential_in_any_output_even_with_debug(
    tls_registry: TLSRegistry, token_registry: TokenRegistry, repo: str, workspace: Path
) -> None:
    """Refused and accepted credentials, basic and token, with --debug tracebacks."""
    tls_address, token_address = tls_registry.registry.address, token_registry.registry.address
    secrets = {
        tls_registry.password,
        token_registry.password,
        base64.b64encode(f"{tls_registry.user}:{tls_registry.password}".encode()).decode(),
    }
    wrong = "Refused-" + tls_registry.password[::-1]
    secrets.add(wrong)
    _seed_tls(tls_registry, repo)
    token_creds = StaticCredentials(
        {token_address: Credential(token_registry.user, token_registry.password)}
    )
    with RegistryClient(
        token_address, credentials=token_creds, actions="pull,push", retry=FAST
    ) as client:
        seed(client, repo)
    runs: list[Result] = []
    for password in (tls_registry.password, wrong):
        auth = base64.b64encode(f"{tls_registry.user}:{password}".encode()).decode()
        env = _docker_config(workspace / "dc-tls", {"auths": {tls_address: {"auth": auth}}})
        for extra in ((), ("--json",), ("--dry-run",)):
            runs.append(
                run_toolkit(
                    "--debug", "manifest", "--repo", f"https://{tls_address}/{repo}",
                    "--registry-ca", str(tls_registry.ca), *extra, cwd=workspace, env=env,
                )
            )  # fmt: skip
    for password in (token_registry.password, wrong):
        env = _docker_config(
            workspace / "dc-token",
            {"auths": {token_address: {"username": token_registry.user, "password": password}}},
        )
        runs.append(
            run_toolkit(
                "--debug", "manifest", "--repo", f"{token_address}/{repo}", cwd=workspace, env=env
            )
        )
    # Accepted credentials (runs 0-2, 6) succeed; refused ones fail with --debug's traceback.
    assert [r.returncode == 0 for r in runs] == [True] * 3 + [False] * 3 + [True, False]
    assert all(
        "Traceback" in r.stderr and "RegistryError" in r.stderr for r in runs if r.returncode
    )
    for run in runs:
        for secret in secrets:
            assert secret not in run.stdout
            assert secret not in run.stderr


# --- bad input -------------------------------------------------------------------------------


def _seed_tls(tls_registry: TLSRegistry, repo: str) -> StaticCredentials:
    address = tls_registry.registry.address
    creds = StaticCredentials({address: Credential(tls_registry.user, tls_registry.password)})
    with RegistryClient(
        address,
        scheme="https",
        ca=tls_registry.ca,
        credentials=creds,
        actions="pull,push",
        retry=FAST,
    ) as client:
        seed(client, repo)
    return creds


BAD = {
    # name: (args, docker config or None, helper scripts, exit code, text in the error)
    "no-repo": ([], None, {}, 2, "--repo is required"),
    "no-registry": (["--repo", "python"], None, {}, 2, "names no registry"),
    "upper-case": (["--repo", "{plain}/Python"], None, {}, 2, "is not a repository name"),
    "tag-in-repo": (["--repo", "{plain}/python:3.8"], None, {}, 2, "without a tag or digest"),
    "digest-in-repo": (
        ["--repo", "{plain}/python@sha256:" + "a" * 64],
        None,
        {},
        2,
        "without a tag or digest",
    ),
    "unknown-scheme": (
        ["--repo", "oci://{plain}/python"],
        None,
        {},
        2,
        "unknown registry scheme 'oci'",
    ),
    "plain-http-remote": (
        ["--repo", "http://registry.example.net/python"],
        None,
        {},
        2,
        "plain HTTP to registry registry.example.net refused",
    ),
    "port-out-of-range": (
        ["--repo", "127.0.0.1:99999/python"],
        None,
        {},
        2,
        "is not a registry host[:port]",
    ),
    "empty-path": (["--repo", "{plain}/"], None, {}, 2, "is not a repository name"),
    "missing-ca": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "/nonexistent/ca.pem"],
        None,
        {},
        2,
        "--registry-ca /nonexistent/ca.pem: no such file",
    ),
    "unknown-selector": (
        ["--repo", "{plain}/{repo}", "4.0-*"],
        None,
        {},
        3,
        "selector '4.0-*' matches no build",
    ),
    "missing-versions": (
        ["--repo", "{plain}/{repo}", "--versions", "nope.json"],
        None,
        {},
        2,
        "nope.json",
    ),
    "config-not-json": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        "{not json",
        {},
        2,
        "not valid JSON",
    ),
    "config-bad-auth": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {"auths": {"{tls}": {"auth": "%%%"}}},
        {},
        2,
        "is not base64 of user:password",
    ),
    "config-auths-not-object": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {"auths": ["x"]},
        {},
        2,
        "'auths' must be an object",
    ),
    "helper-missing": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {"credsStore": "absent"},
        {},
        9,
        "docker-credential-absent",
    ),
    "helper-fails": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {"credHelpers": {"{tls}": "broken"}},
        {"broken": "echo 'vault sealed' >&2; exit 4"},
        12,
        "failed for {tls} (exit 4): vault sealed",
    ),
    "helper-garbage": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {"credsStore": "garbled"},
        {"garbled": "echo '<html>'"},
        12,
        "answered something other than",
    ),
    "no-credentials": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {},
        {},
        12,
        "the registry needs a login (run docker login {tls})",
    ),
    "wrong-password": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{ca}"],
        {"auths": {"{tls}": {"username": "publisher", "password": "wrong"}}},
        {},
        12,
        "unauthorized",
    ),
    "unknown-ca": (
        ["--repo", "https://{tls}/{repo}", "--registry-ca", "{bogus}"],
        None,
        {},
        12,
        "TLS verification failed",
    ),
    "no-ca-at-all": (["--repo", "https://{tls}/{repo}"], None, {}, 12, "TLS verification failed"),
    "https-to-plain": (
        ["--repo", "https://{plain}/{repo}", "--retries", "0"],
        None,
        {},
        12,
        "TLS failed",
    ),
    "http-to-tls": (["--repo", "{tls}/{repo}", "--retries", "0"], None, {}, 12, "answered 400"),
    "nothing-listening": (
        ["--repo", "127.0.0.1:5009/{repo}", "--retries", "0"],
        None,
        {},
        12,
        "Connection refused",
    ),
    "token-wrong-password": (
        ["--repo", "{token}/{repo}"],
        {"auths": {"{token}": {"username": "tokenuser", "password": "wrong"}}},
        {},
        12,
        "token service refused the credentials",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(
    case: str,
    plain_registry: regs.RunningRegistry,
    tls_registry: TLSRegistry,
    token_registry: TokenRegistry,
    bogus_ca: Path,
    repo: str,
    workspace: Path,
) -> None:
    args, config, helpers, code, text = BAD[case]
    values = {
        "plain": plain_registry.address,
        "tls": tls_registry.registry.address,
        "token": token_registry.registry.address,
        "repo": repo,
        "ca": str(tls_registry.ca),
        "bogus": str(bogus_ca),
    }

    def fill(value: str) -> str:
        for key, replacement in values.items():
            value = value.replace("{" + key + "}", replacement)
        return value

    creds = _seed_tls(tls_registry, repo)
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        seed(client, repo)
    env = {"DOCKER_CONFIG": str(workspace / "dc"), "PATH": f"{workspace / 'bin'}:/usr/bin:/bin"}
    (workspace / "dc").mkdir()
    if config is not None:
        raw = config if isinstance(config, str) else fill(json.dumps(config))
        (workspace / "dc" / "config.json").write_text(raw)
    (workspace / "bin").mkdir()
    for name, script in helpers.items():
        path = workspace / "bin" / f"docker-credential-{name}"
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)
    done = run_toolkit("manifest", *[fill(a) for a in args], cwd=workspace, env=env)
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert fill(text) in lines[0]
    assert done.stdout == ""
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert set(lists(client, repo).values()) == {None}
    address = tls_registry.registry.address
    with RegistryClient(
        address, scheme="https", ca=tls_registry.ca, credentials=creds, retry=FAST
    ) as client:
        assert set(lists(client, repo).values()) == {None}
