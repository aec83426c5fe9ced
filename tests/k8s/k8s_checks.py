"""Helpers for tests/k8s/run.sh: pick rendered Helm manifests apart and check them.

Usage: python k8s_checks.py <command> [args...]; exits non-zero with a message
on stderr when a check fails. Needs PyYAML (installed with kubernetes-validate).
"""

import base64
import json
import sys
import tomllib
from pathlib import Path

import yaml

CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data a ConfigMap/Secret may hold
CRD_GROUP = "core.spinkube.dev"
CRD_KINDS = {"SpinApp", "SpinAppExecutor"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


class CheckError(Exception):
    pass


def load(path):
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    if not docs:
        raise CheckError(f"{path}: no manifests")
    return docs


def find(docs, kind, name=None):
    hits = [d for d in docs if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)]
    if len(hits) != 1:
        raise CheckError(f"expected one {kind} {name or ''}, found {len(hits)}")
    return hits[0]


def is_crd_object(doc):
    return doc.get("apiVersion", "").split("/")[0] == CRD_GROUP


# ---------------------------------------------------------------- commands

def cmd_core(render, out):
    """Write the core (non-SpinKube) resources to one multi-document file."""
    docs = [d for d in load(render) if not is_crd_object(d)]
    Path(out).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    print(f"{len(docs)} core resources")


def cmd_object(render, kind, out):
    """Write the one object of `kind` as JSON (for check-jsonschema)."""
    Path(out).write_text(json.dumps(find(load(render), kind), indent=1))


def _strict(schema):
    """Forbid unknown fields wherever the CRD lists the known ones, like the API
    server's strict field validation (`kubectl apply --validate=strict`)."""
    if isinstance(schema, dict):
        if (schema.get("type") == "object" and "properties" in schema
                and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            _strict(value)
    elif isinstance(schema, list):
        for value in schema:
            _strict(value)
    return schema


def cmd_crd_schema(crd, version, out):
    """Extract a CRD version's openAPIV3Schema as a strict JSON Schema."""
    doc = yaml.safe_load(Path(crd).read_text())
    versions = [v for v in doc["spec"]["versions"] if v["name"] == version]
    if not versions:
        raise CheckError(f"{crd}: no version {version}")
    schema = _strict(versions[0]["schema"]["openAPIV3Schema"])
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
    # apiVersion/kind are free strings in the CRD; pin them to this CRD.
    schema["properties"]["apiVersion"] = {"const": f"{doc['spec']['group']}/{version}"}
    schema["properties"]["kind"] = {"const": doc["spec"]["names"]["kind"]}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    Path(out).write_text(json.dumps(schema, indent=1))


def cmd_configmap_key(render, name, key, out):
    cm = find(load(render), "ConfigMap", name)
    if key not in (cm.get("data") or {}):
        raise CheckError(f"ConfigMap {name} has no key {key}")
    Path(out).write_text(cm["data"][key])


def cmd_secret_key(render, name, key, out):
    secret = find(load(render), "Secret", name)
    if key in (secret.get("data") or {}):
        Path(out).write_bytes(base64.b64decode(secret["data"][key]))
    elif key in (secret.get("stringData") or {}):
        Path(out).write_text(secret["stringData"][key])
    else:
        raise CheckError(f"Secret {name} has no key {key}")


def cmd_toml_equal(a, b):
    """Both files parse as TOML and hold the same tables and values."""
    ta, tb = (tomllib.loads(Path(p).read_text()) for p in (a, b))
    if ta != tb:
        raise CheckError(f"{a} = {ta!r}\n{b} = {tb!r}")
    print(f"equal: {json.dumps(ta)}")


def cmd_same_bytes(a, b):
    if Path(a).read_bytes() != Path(b).read_bytes():
        raise CheckError(f"{a} and {b} differ")


def cmd_sql(render, fullname, root):
    """The SQL ConfigMaps hold exactly the repo's migrations/*.sql and seed/*.sql."""
    docs = load(render)
    for kind in ("migrations", "seed"):
        cm = find(docs, "ConfigMap", f"{fullname}-sql-{kind}")
        data = cm.get("data") or {}
        files = {p.name: p.read_text() for p in sorted((Path(root) / kind).glob("*.sql"))}
        if set(data) != set(files):
            raise CheckError(f"{kind}: ConfigMap keys {sorted(data)} != repo files {sorted(files)}")
        for name, text in files.items():
            if data[name] != text:
                raise CheckError(f"{kind}/{name}: ConfigMap content differs from the repo file")
        if not files:
            raise CheckError(f"the repo has no {kind}/*.sql: the migrate/seed Job would have nothing to run")
        print(f"{kind}: {sorted(files)}")


def cmd_sizes(render):
    """Every ConfigMap and Secret stays under the 1 MiB object limit."""
    for doc in load(render):
        if doc["kind"] not in ("ConfigMap", "Secret"):
            continue
        size = sum(len(str(v).encode()) for field in ("data", "stringData", "binaryData")
                   for v in (doc.get(field) or {}).values())
        if size >= CONFIGMAP_LIMIT:
            raise CheckError(f"{doc['kind']} {doc['metadata']['name']}: {size} bytes >= 1 MiB")
        print(f"{doc['kind']} {doc['metadata']['name']}: {size} bytes")


def _pod_specs(docs):
    for doc in docs:
        kind = doc["kind"]
        if kind in WORKLOAD_KINDS:
            spec = doc["spec"]
            if kind == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            yield f"{kind}/{doc['metadata']['name']}", spec["template"]


def cmd_resources(render):
    """Every container (and the SpinApp's) sets cpu+memory requests and limits."""
    docs = load(render)
    checked = []
    for where, template in _pod_specs(docs):
        spec = template["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            _require_resources(f"{where}/{container['name']}", container.get("resources"))
            checked.append(f"{where}/{container['name']}")
    app = find(docs, "SpinApp")
    _require_resources(f"SpinApp/{app['metadata']['name']}", app["spec"].get("resources"))
    checked.append(f"SpinApp/{app['metadata']['name']}")
    print("\n".join(checked))


def _require_resources(where, resources):
    for part in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if not (resources or {}).get(part, {}).get(res):
                raise CheckError(f"{where}: no {part}.{res}")


def _matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) \
        and not selector.get("matchExpressions")


def cmd_netpol(render):
    """Every pod of the release (the SpinApp's included) is selected by a
    NetworkPolicy that governs both its ingress and its egress."""
    docs = load(render)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not policies:
        raise CheckError("no NetworkPolicy rendered")
    pods = [(where, t["metadata"].get("labels") or {}) for where, t in _pod_specs(docs)]
    app = find(docs, "SpinApp")
    # Labels the spin-operator puts on the app's pods, plus spec.podLabels.
    app_labels = {f"{CRD_GROUP}/app-name": app["metadata"]["name"], **(app["spec"].get("podLabels") or {})}
    pods.append((f"SpinApp/{app['metadata']['name']}", app_labels))
    for where, labels in pods:
        types = set()
        for pol in policies:
            if _matches(pol["spec"]["podSelector"], labels):
                types |= set(pol["spec"].get("policyTypes", []))
        if types != {"Ingress", "Egress"}:
            raise CheckError(f"{where}: NetworkPolicy types {sorted(types)}, want Ingress and Egress")
        print(f"{where}: covered")


def cmd_spin_vars(render, spin_toml):
    """SpinApp variables are declared in spin.toml, and the ones that have no
    sensible in-cluster default are all set."""
    app = find(load(render), "SpinApp")
    names = [v["name"] for v in app["spec"].get("variables", [])]
    declared = set(tomllib.loads(Path(spin_toml).read_text()).get("variables", {}))
    unknown = sorted(set(names) - declared)
    if unknown:
        raise CheckError(f"SpinApp sets variables spin.toml does not declare: {unknown}")
    if len(names) != len(set(names)):
        raise CheckError(f"duplicate SpinApp variables: {names}")
    must = {"db_url", "db_host", "redis_url", "redis_host", "admin_token", "public_url"}
    missing = sorted(must - set(names))
    if missing:
        raise CheckError(f"SpinApp does not set {missing}")
    secret_backed = {v["name"] for v in app["spec"]["variables"] if "valueFrom" in v}
    if not {"db_url", "admin_token"} <= secret_backed:
        raise CheckError(f"db_url and admin_token must come from Secrets, got {sorted(secret_backed)}")
    unset = sorted(declared - set(names))
    print(f"set: {names}" + (f"\nleft at spin.toml defaults: {unset}" if unset else ""))


def cmd_alertmanager_mount(render, fullname):
    """The rendered Alertmanager config reads the webhook from the file where
    the Deployment mounts the Slack Secret's key."""
    docs = load(render)
    name = f"{fullname}-alertmanager"
    config = yaml.safe_load(find(docs, "ConfigMap", name)["data"]["alertmanager.yml"])
    files = {c.get("api_url_file") for r in config["receivers"] for c in r.get("slack_configs", [])}
    if None in files or "api_url" in json.dumps(config).replace("api_url_file", ""):
        raise CheckError("a Slack receiver does not use api_url_file (or embeds api_url)")
    pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = set()
    for mount in pod["containers"][0]["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret:
            for item in secret.get("items", []):
                mounted.add(f"{mount['mountPath'].rstrip('/')}/{item['path']}")
    if not files <= mounted:
        raise CheckError(f"api_url_file {sorted(files)} not among mounted secret files {sorted(mounted)}")
    print(f"api_url_file {sorted(files)} is mounted from a Secret")


def cmd_mirrord(mirrord_json, render, namespace):
    """.mirrord/mirrord.json targets the Deployment and container the operator
    makes for the SpinApp, steals, and maps to the pod's port 80."""
    cfg = json.loads(Path(mirrord_json).read_text())
    app = find(load(render), "SpinApp")["metadata"]["name"]
    path = cfg["target"]["path"]
    if path != {"deployment": app, "container": app}:
        raise CheckError(f"target {path} != deployment/container {app}")
    if cfg["target"].get("namespace") != namespace:
        raise CheckError(f"target namespace {cfg['target'].get('namespace')} != {namespace}")
    incoming = cfg["feature"]["network"]["incoming"]
    if incoming.get("mode") != "steal":
        raise CheckError("incoming mode is not steal")
    if [3000, 80] not in incoming.get("port_mapping", []):
        raise CheckError("no port_mapping [3000, 80] (local spin up --listen 127.0.0.1:3000 -> pod port 80)")
    # The app's configuration is its Spin variables (SPIN_VARIABLE_<NAME>).
    env = cfg["feature"].get("env", True)
    if env is not True:
        include = env.get("include") if isinstance(env, dict) else None
        include = include.split(";") if isinstance(include, str) else (include or [])
        if not isinstance(env, dict) or (include and "SPIN_VARIABLE_*" not in include):
            raise CheckError(f"feature.env {env!r} does not import SPIN_VARIABLE_*")
    # Postgres/Redis are cluster service names: connect and resolve through the pod.
    network = cfg["feature"]["network"]
    outgoing = network.get("outgoing", True)
    if outgoing is False or (isinstance(outgoing, dict) and outgoing.get("tcp") is False):
        raise CheckError("outgoing TCP does not go through the cluster")
    if network.get("dns", True) is False:
        raise CheckError("DNS is resolved locally: cluster service names would not resolve")
    print(f"deployment/{app}/container/{app} in {namespace}, steal, 3000->80, env, outgoing, dns")


def cmd_workflow(path):
    """The CI workflow runs .ci/run on push and pull requests, and on v* tags
    also builds the components and pushes the app with `spin registry push`."""
    wf = yaml.safe_load(Path(path).read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    if not isinstance(on, dict) or "push" not in on or "pull_request" not in on:
        raise CheckError(f"`on` must cover push and pull_request, got {on!r}")
    tags = (on["push"] or {}).get("tags", [])
    if "v*" not in tags:
        raise CheckError(f"push.tags {tags!r} does not include v*")
    runs = {name: "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in job.get("steps", []))
            for name, job in wf["jobs"].items()}
    if not any(".ci/run" in text for text in runs.values()):
        raise CheckError("no job runs .ci/run")
    publish = [name for name, text in runs.items() if "spin registry push" in text]
    if not publish:
        raise CheckError("no job runs `spin registry push`")
    for name in publish:
        job = wf["jobs"][name]
        if "refs/tags/v" not in str(job.get("if", "")):
            raise CheckError(f"job {name} pushes without an `if` on refs/tags/v*")
        if "spin registry login" not in runs[name] or "ghcr.io" not in runs[name]:
            raise CheckError(f"job {name} does not log in to ghcr.io with spin registry login")
        if (job.get("permissions") or {}).get("packages") != "write":
            raise CheckError(f"job {name} lacks permissions.packages: write")
        if "spin build" not in runs[name] and "./dev build" not in runs[name]:
            raise CheckError(f"job {name} does not build the components before pushing")
    print(f"jobs: {sorted(wf['jobs'])}; publishing: {publish}")


def cmd_expect(render, expr_file):
    """Evaluate assertions (Python expressions over `docs`, `find`, `secret`)
    listed one per line in expr_file; each must be true."""
    docs = load(render)

    def secret(name, key):
        return base64.b64decode(find(docs, "Secret", name)["data"][key]).decode()

    env = {"docs": docs, "find": lambda k, n=None: find(docs, k, n), "secret": secret}
    for line in Path(expr_file).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            ok = eval(line, env)  # noqa: S307 - test assertions written in run.sh
        except Exception as exc:  # noqa: BLE001
            raise CheckError(f"{line}: {exc!r}") from exc
        if not ok:
            raise CheckError(f"false: {line}")
        print(f"true: {line}")


COMMANDS = {name[4:].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("cmd_")}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.exit(f"usage: {argv[0]} {{{','.join(sorted(COMMANDS))}}} args...")
    try:
        COMMANDS[argv[1]](*argv[2:])
    except CheckError as exc:
        sys.exit(f"FAIL: {exc}")


if __name__ == "__main__":
    main(sys.argv)
