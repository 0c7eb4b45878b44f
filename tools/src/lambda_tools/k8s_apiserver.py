"""A real Kubernetes API server on this machine, for deploys without a cluster (`make k8s-up`).

etcd (Debian's `etcd-server`) and a kube-apiserver run as plain processes, like the services of
`lambda-services`; their pids go to LAMBDA_STATE_DIR/pids, so `make down` stops them too. There is no
kubelet, scheduler or controller-manager: objects are stored and validated (schemas, CRDs' CEL rules,
admission) but no pod ever runs, so only the API contract of the manifests is proven.

The kube-apiserver and a kubectl of the same release are built from the `k8s.io/kubernetes` Go module
(through the Go module proxy) as the main module, since `go install` refuses a module with replace
directives: its `./staging/src/k8s.io/*` replaces are pointed at the published `k8s.io/*` modules.
The binaries are cached outside the repository, keyed by version, so a fresh clone reuses them.

Run: `python -m lambda_tools.k8s_apiserver build|up|down|status|crds`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lambda_tools import gobuild, services
from lambda_tools.services import ServiceError

KUBERNETES_VERSION: Final = "v1.34.2"
# The published k8s.io/* staging modules of that release.
STAGING_VERSION: Final = "v0.34.2"
BINARIES: Final = ("kube-apiserver", "kubectl")
# The processes `up` starts, in start order; `down` (and `make down`) stops them in reverse.
PROCESSES: Final = services.K8S_PROCESSES
ETCD_PORT: Final = 2379
ETCD_PEER_PORT: Final = 2380
APISERVER_PORT: Final = 6443
ADMIN_USER: Final = "lambda-admin"
READY_TIMEOUT_S: Final = 120.0


class K8sError(RuntimeError):
    """The API server could not be built, started or given its CRDs; the message says why."""


def cache_dir() -> Path:
    """Where the built binaries live: outside the repository, one folder per Kubernetes version."""
    return gobuild.cache_dir(f"kubernetes-{KUBERNETES_VERSION}")


def binary(name: str) -> Path:
    return cache_dir() / "bin" / name


def version_ldflags() -> str:
    """Stamps the release into the binaries, as the upstream build does (else they say v0.0.0-master)."""
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    stamp = {"gitVersion": KUBERNETES_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    pkgs = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {pkg}.{key}={value}" for pkg in pkgs for key, value in stamp.items())


def build(log: bool = True) -> list[Path]:
    """Builds the missing binaries into the cache (lambda_tools.gobuild); Go's own caches make a
    rebuild quick."""
    (cache_dir() / "bin").mkdir(parents=True, exist_ok=True)
    with gobuild.locked(cache_dir()):
        missing = [name for name in BINARIES if not binary(name).exists()]
        if missing:
            src = gobuild.module_source(
                "k8s.io/kubernetes", KUBERNETES_VERSION, cache_dir(), _use_published_staging
            )
            for name in missing:
                if log:
                    print(
                        f"k8s_apiserver: building {name} {KUBERNETES_VERSION} (minutes when cold)",
                        file=sys.stderr,
                    )
                gobuild.build(src, f"./cmd/{name}", binary(name), ldflags=version_ldflags())
    return [binary(name) for name in BINARIES]


def _use_published_staging(src: Path) -> None:
    """Point go.mod's `./staging/src/k8s.io/X` replaces at the published k8s.io/X modules."""
    go_mod = (src / "go.mod").read_text()
    staged = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/src/", go_mod, re.MULTILINE)
    if not staged:
        raise K8sError("k8s.io/kubernetes's go.mod has no staging replaces to redirect")
    gobuild.run(
        [gobuild.go(), "mod", "edit", *(f"-replace={m}={m}@{STAGING_VERSION}" for m in staged)], cwd=src
    )


# --- certificates and the kubeconfig ------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The files of one API server under a state folder (`.local/state` for `make k8s-up`)."""

    state: Path
    etcd_port: int = ETCD_PORT
    etcd_peer_port: int = ETCD_PEER_PORT
    apiserver_port: int = APISERVER_PORT

    @property
    def root(self) -> Path:
        return self.state / "k8s"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise K8sError(f"`openssl {' '.join(args)}` failed ({result.returncode}):\n{result.stderr[-3000:]}")


def ensure_pki(layout: Layout) -> str:
    """A CA, the serving certificate, the service-account key pair and the admin token; returns it.

    Made once per state folder; the admin authenticates with a static token (system:masters).
    """
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if shutil.which("openssl") is None:
        raise K8sError("openssl is not installed; run `make setup`")
    if not (pki / "ca.crt").exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                 "-days", "3650", "-subj", "/CN=lambda-local-kubernetes-ca", cwd=pki)  # fmt: skip
    if not (pki / "apiserver.crt").exists():
        names = "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
                 "-subj", "/CN=kube-apiserver", "-addext", f"subjectAltName={names}", cwd=pki)  # fmt: skip
        _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-copy_extensions", "copyall", "-out", "apiserver.crt",
                 cwd=pki)  # fmt: skip
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    tokens = pki / "tokens.csv"
    if not tokens.exists():
        token = os.urandom(24).hex()
        tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
    return tokens.read_text().split(",", 1)[0]


def write_kubeconfig(layout: Layout, token: str) -> Path:
    """The admin's kubeconfig (context `lambda-local`); kubectl reads it through KUBECONFIG."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "lambda-local",
                "cluster": {"server": layout.server, "certificate-authority": str(layout.pki / "ca.crt")},
            }
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [
            {
                "name": "lambda-local",
                "context": {"cluster": "lambda-local", "user": ADMIN_USER, "namespace": "lambda"},
            }
        ],
        "current-context": "lambda-local",
    }
    layout.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
    layout.kubeconfig.chmod(0o600)
    return layout.kubeconfig


# --- processes ----------------------------------------------------------------------------------


def _etcd_ready(layout: Layout) -> bool:
    return services.http_ok(f"http://127.0.0.1:{layout.etcd_port}/health")


def _apiserver_ready(layout: Layout, token: str) -> bool:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{layout.server}/readyz", headers=headers)  # noqa: S310 (local https)
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as resp:  # noqa: S310 (local)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_etcd(layout: Layout) -> None:
    state = layout.state
    if services.running_pid(state, "etcd") is not None:
        return
    etcd = shutil.which("etcd")
    if etcd is None:
        raise K8sError("etcd is not installed (Debian's etcd-server); run `make setup`")
    for port in (layout.etcd_port, layout.etcd_peer_port):
        if not _port_free(port):
            raise K8sError(f"port {port} is taken by another process; etcd needs it")
    client = f"http://127.0.0.1:{layout.etcd_port}"
    peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
    argv = [
        etcd,
        "--name=lambda-local",
        f"--data-dir={layout.root / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=lambda-local={peer}",
        "--quota-backend-bytes=1073741824",
        "--log-level=warn",
    ]
    log = state / "logs" / "etcd.log"
    services.spawn(state, "etcd", argv, log, env={**os.environ, "ETCD_UNSUPPORTED_ARCH": "amd64"})
    services.wait_ready("etcd", lambda: _etcd_ready(layout), log, READY_TIMEOUT_S)


def start_apiserver(layout: Layout, token: str) -> None:
    state = layout.state
    if services.running_pid(state, "kube-apiserver") is not None:
        return
    exe = binary("kube-apiserver")
    if not exe.exists():
        raise K8sError(f"{exe} is missing: run `make setup` (it builds kube-apiserver {KUBERNETES_VERSION})")
    if not _port_free(layout.apiserver_port):
        raise K8sError(f"port {layout.apiserver_port} is taken by another process; kube-apiserver needs it")
    pki = layout.pki
    argv = [
        str(exe),
        f"--etcd-servers=http://127.0.0.1:{layout.etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={layout.apiserver_port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={pki / 'tokens.csv'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        # Addresses the API server hands out to Services; nothing routes them here (no kube-proxy).
        "--service-cluster-ip-range=10.96.0.0/16",
        # The `kubernetes` Service's endpoint would be 127.0.0.1, which the API refuses; nothing uses it.
        "--endpoint-reconciler-type=none",
        # Its finalizer is cleared by the controller-manager, which does not run here: a deleted PVC
        # would stay Terminating forever. No pod can use a PVC here anyway (no kubelet).
        "--disable-admission-plugins=StorageObjectInUseProtection",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=false",
        "--profiling=false",
        "--v=1",
    ]
    log = state / "logs" / "kube-apiserver.log"
    services.spawn(state, "kube-apiserver", argv, log)
    services.wait_ready("kube-apiserver", lambda: _apiserver_ready(layout, token), log, READY_TIMEOUT_S)


def kubectl(layout: Layout, *args: str, stdin: str | None = None) -> str:
    """Runs the built kubectl against this API server; a K8sError with its stderr on failure."""
    argv = [str(binary("kubectl")), f"--kubeconfig={layout.kubeconfig}", *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise K8sError(f"kubectl {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def install_crds(layout: Layout, crds: Path) -> list[str]:
    """Server-side applies every CRD of `crds` (built by setup) and waits until each is Established."""
    files = sorted(crds.glob("*.yaml"))
    if not files:
        raise K8sError(f"no CRDs in {crds}: run `make setup` (lambda_tools.k8s_crds builds them)")
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=lambda-k8s-up", "-o", "name"]
    for path in files:
        args += ["-f", str(path)]
    names = kubectl(layout, *args).split()
    kubectl(layout, "wait", "--for=condition=Established", "--timeout=60s", *names)
    return names


def up(layout: Layout, crds: Path) -> list[str]:
    """Starts etcd and kube-apiserver (idempotent), writes the kubeconfig, installs the CRDs."""
    layout.root.mkdir(parents=True, exist_ok=True)
    build()
    token = ensure_pki(layout)
    write_kubeconfig(layout, token)
    start_etcd(layout)
    start_apiserver(layout, token)
    return install_crds(layout, crds)


def down(layout: Layout) -> list[str]:
    """Stops what `up` started, by recorded pid, the API server first. Returns what stopped."""
    stopped = []
    for name in reversed(PROCESSES):
        pid = services.running_pid(layout.state, name)
        if pid is not None:
            services.stop_pid(pid)
            stopped.append(name)
        services.pid_file(layout.state, name).unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k8s_apiserver", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "up", "down", "status", "crds", "kubectl-path"])
    parser.add_argument(
        "--state", type=Path, default=Path(os.environ.get("LAMBDA_STATE_DIR", ".local/state"))
    )
    parser.add_argument("--crds", type=Path, default=services.REPO / ".local" / "crds")
    ns = parser.parse_args(argv)
    layout = Layout(ns.state.resolve())
    try:
        if ns.command == "build":
            for path in build():
                print(path)
        elif ns.command == "kubectl-path":
            if not binary("kubectl").exists():
                return 1
            print(binary("kubectl"))
        elif ns.command == "up":
            crds = up(layout, ns.crds)
            print(f"kube-apiserver {KUBERNETES_VERSION} ready at {layout.server} with {len(crds)} CRDs")
            print(f"export KUBECONFIG={layout.kubeconfig}")
        elif ns.command == "crds":
            print("\n".join(install_crds(layout, ns.crds)))
        elif ns.command == "down":
            stopped = down(layout)
            print("stopped:", ", ".join(stopped) if stopped else "nothing was running")
        else:
            for name in PROCESSES:
                pid = services.running_pid(layout.state, name)
                print(f"{name:15} {'running pid ' + str(pid) if pid else 'stopped'}")
    except (K8sError, ServiceError) as exc:
        print(f"k8s_apiserver {ns.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
