"""The Helm chart deploy/helm/embed-server and the plain manifests rendered from it (deploy/kubernetes/).

Offline, through the tools of requirements/deploy-tools.txt and deploy/tools/package.json: Helm v4's
SDK (helm-python-sdk) lints and renders; kubernetes-validate checks the built-in kinds against the
Kubernetes 1.30 (the chart's minimum) and 1.32 OpenAPI schemas; deploy/tools/validate-crds.mjs checks
the ServiceMonitor, PrometheusRule and ScaledObject against their CRD models; yamllint checks deploy/. A missing tool
fails the test (CI installs them all); nothing here is skipped.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.tools import INSTALL_HINT, load_script, tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "embed-server"
TOOLS = DEPLOY / "tools"
PROFILES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.32.0"
MIN_KUBE_VERSION = "1.30.0"  # Chart.yaml kubeVersion: the preStop sleep action
CUSTOM_RESOURCE = re.compile(r"^apiVersion: (monitoring\.coreos\.com|keda\.sh)/", re.MULTILINE)

# Server flags the chart already passes (EMBED_*) that another change is adding to the server (unknown
# EMBED_* variables are ignored meanwhile). Empty this once server/settings.py has them all.

Obj = dict[str, Any]
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ----------------------------------------------------------------------------- tools


def helm_sdk() -> ModuleType:
    try:
        import helm_python
    except ImportError as error:  # pragma: no cover - CI installs it
        pytest.fail(f"helm-python-sdk is missing ({error}): {INSTALL_HINT}")
    return helm_python


def node_validator() -> list[str]:
    if not (TOOLS / "node_modules" / "@kubernetes-models" / "keda").exists():
        pytest.fail(f"deploy/tools/node_modules is missing: {INSTALL_HINT}")
    return [tool("node"), str(TOOLS / "validate-crds.mjs")]


@cache
def render_module() -> ModuleType:
    return load_script(DEPLOY / "render.py")


def profile_values(name: str | None) -> Obj:
    return yaml.safe_load((CHART / "ci" / name).read_text()) if name else {}


def merged(*layers: Obj) -> Obj:
    """Values layered like repeated `-f`: later maps merge into earlier ones."""
    out: Obj = {}
    for layer in layers:
        _merge_into(out, copy.deepcopy(layer))
    return out


def _merge_into(base: Obj, layer: Obj) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value


@cache
def _render_cached(key: str) -> tuple[str, ...]:
    render = render_module()
    helm_sdk()
    return tuple(render.documents(render.render_chart(json.loads(key)), tests=True))


def render_text(values: Obj | None = None) -> list[str]:
    """The chart's objects for these values, as YAML texts (the `helm test` hook included)."""
    return list(_render_cached(json.dumps(values or {}, sort_keys=True)))


def render(values: Obj | None = None) -> list[Obj]:
    return [yaml.load(doc, Loader=LOADER) for doc in render_text(values)]


def render_error(values: Obj) -> str:
    helm = helm_sdk()
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as error:
        render(values)
    return str(error.value)


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def server_container(deployment: Obj) -> Obj:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server")


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def env_value(container: Obj, name: str) -> str | None:
    entry = env_of(container).get(name)
    return entry.get("value") if entry else None


def pod_specs(objects: list[Obj]) -> list[Obj]:
    specs = [o["spec"] for o in of_kind(objects, "Pod")]
    specs += [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return specs


# ----------------------------------------------------------------------------- lint and schema


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_lint_strict(profile: str | None) -> None:
    helm = helm_sdk()
    report = helm.lint(CHART, profile_values(profile), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize(
    "values, key",
    [
        ({"replicaCont": 3}, "replicaCont"),  # a misspelt top-level key
        ({"server": {"maxBatchToken": 4096}}, "maxBatchToken"),
        ({"probes": {"startup": {"failureThreshhold": 300}}}, "failureThreshhold"),
        ({"gpu": {"enabled": True, "cout": 2}}, "cout"),
        ({"redis": {"external": {"URL": "redis://r:6379/0"}}}, "URL"),
    ],
)
def test_unknown_value_fails_lint_and_template(values: Obj, key: str) -> None:
    helm = helm_sdk()
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert any(key in e for e in report["errors"]), report
    assert key in render_error(values)


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"server": {"engine": "onnx"}}, "/server/engine"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"model": {"revision": "V 2"}}, "/model/revision"),
        ({"auth": {"tenants": {"t": {"keys": ["k"], "rpm": 5}}}}, "rpm"),
        ({"autoscaling": {"enabled": True}, "keda": {"enabled": True}}, "/keda/enabled"),
        ({"redis": {"enabled": True, "external": {"url": "redis://r:6379/0"}}}, "/redis/external/url"),
    ],
)
def test_schema_refuses_bad_values(values: Obj, fragment: str) -> None:
    assert fragment in render_error(values)


def test_schema_closes_every_object_it_defines() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def open_objects(node: Any, path: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False and "if" not in path:
                found.append(path or "/")
            for key, child in node.items():
                found += open_objects(child, f"{path}/{key}")
        elif isinstance(node, list):
            for n, child in enumerate(node):
                found += open_objects(child, f"{path}/{n}")
        return found

    # allOf/if/then only add constraints to objects that are closed where they are defined.
    assert [p for p in open_objects(schema, "") if not p.startswith("/allOf")] == []


def test_every_server_value_is_a_server_flag() -> None:
    """Each `server.*` value becomes EMBED_<FLAG>: it must name a real setting of server/settings.py."""
    from server.settings import ServerSettings

    schema = json.loads((CHART / "values.schema.json").read_text())
    samples = {"string": "x", "integer": 2, "number": 2.5, "boolean": True, "array": ["a", "b"]}
    values: Obj = {}
    for key, spec in schema["properties"]["server"]["properties"].items():
        if "enum" in spec:
            values[key] = next(v for v in spec["enum"] if v is not None)
        elif key == "device":
            values[key] = "cpu"
        else:
            types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            values[key] = samples[next(t for t in types if t != "null")]
    deployment = one(render({"server": values}), "Deployment")
    flags = {name.removeprefix("EMBED_").lower() for name in env_of(server_container(deployment))}
    chart_flags = {f for f in flags if f not in ("port", "data_dir", "model")}
    assert len(chart_flags) == len(values)  # every value reached the environment
    unknown = chart_flags - set(ServerSettings.model_fields)
    assert not unknown, f"not server flags: {sorted(unknown)}"


# ----------------------------------------------------------------------------- schema validation of the output


@cache
def kubernetes_validate_profiles(tmp: Path, version: str) -> dict[str | None, str]:
    """kubernetes-validate --strict over every profile's built-in kinds in one run: profile -> its output."""
    files = {}
    for profile in [None, *PROFILES]:
        docs = [d for d in render_text(profile_values(profile)) if not CUSTOM_RESOURCE.search(d)]
        files[profile] = tmp / f"{profile or 'default'}.yaml"
        files[profile].write_text("\n---\n".join(docs))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", version, *map(str, files.values())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return {profile: "\n".join(line for line in lines if str(path) in line) for profile, path in files.items()}


@pytest.mark.parametrize("version", [MIN_KUBE_VERSION, KUBE_VERSION])
@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_builtin_kinds_validate_against_kubernetes(
    profile: str | None, version: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    output = kubernetes_validate_profiles(tmp_path_factory.getbasetemp(), version)[profile]
    assert output and all(line.startswith("INFO") and " passed " in line for line in output.splitlines()), output
    passed = {line.split("resource ")[1].split(" against")[0] for line in output.splitlines()}
    expected = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in render(profile_values(profile))}
    assert passed == {e for e in expected if not e.startswith(("servicemonitor/", "prometheusrule/", "scaledobject/"))}


def test_kubernetes_validate_catches_a_wrong_field() -> None:
    text = (DEPLOY / "kubernetes" / "embed-server.yaml").read_text()
    planted = text.replace("automountServiceAccountToken: false", "automountServiceAcountToken: false", 1)
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBE_VERSION, "-"],
        input=planted,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "automountServiceAcountToken" in result.stdout + result.stderr


@cache
def validate_crds(text: str) -> tuple[int, Obj]:
    result = subprocess.run(node_validator(), input=text, capture_output=True, text=True, timeout=60, cwd=TOOLS)
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize(
    "profile, expected",
    [
        ("cpu-values.yaml", {"ServiceMonitor/embed-server", "PrometheusRule/embed-server"}),
        ("keda-values.yaml", {"ScaledObject/embed-server", "ServiceMonitor/embed-server"}),
    ],
)
def test_custom_resources_validate_against_their_crds(profile: str, expected: set[str]) -> None:
    code, report = validate_crds("\n---\n".join(render_text(profile_values(profile))))
    assert code == 0, report["errors"]
    assert set(report["checked"]) == expected


PLANTED_CRD_ERRORS = [
    ("ServiceMonitor", ("spec", "endpoints", 0, "interval"), "15 seconds", "interval"),  # not a duration
    ("ServiceMonitor", ("spec", "endpoints", 0, "scrapeInterval"), "15s", "spec.endpoints[0].scrapeInterval"),
    ("PrometheusRule", ("spec", "groups", 0, "interval"), 30, "interval"),  # a number, not a duration string
    ("PrometheusRule", ("spec", "groups", 0, "rules", 0, "expresion"), "up", "spec.groups[0].rules[0].expresion"),
    ("ScaledObject", ("spec", "minReplicaCount"), "2", "minReplicaCount"),  # a string, not an integer
    ("ScaledObject", ("spec", "triggers", 0, "metadata", "threshold"), 4096, "threshold"),  # must be a string
    ("ScaledObject", ("spec", "advanced", "horizontalPodAutoscalerConfig", "behaviour"), {}, "behaviour"),
]


@cache
def planted_crd_report() -> dict[str, list[str]]:
    """Each planted error in its own copy of the object, all checked in one run: name -> problems."""
    planted = []
    for n, (kind, path, value, _) in enumerate(PLANTED_CRD_ERRORS):
        profile = "keda-values.yaml" if kind == "ScaledObject" else "cpu-values.yaml"
        obj = copy.deepcopy(one(render(profile_values(profile)), kind))
        obj["metadata"]["name"] = f"planted-{n}"
        node = obj
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        planted.append(obj)
    code, report = validate_crds(yaml.safe_dump_all(planted))
    assert code == 1
    return {e["object"].split("/")[1]: e["problems"] for e in report["errors"]}


@pytest.mark.parametrize("n", range(len(PLANTED_CRD_ERRORS)), ids=[f"{k}-{m}" for k, _, _, m in PLANTED_CRD_ERRORS])
def test_crd_validator_catches_a_wrong_field(n: int) -> None:
    message = PLANTED_CRD_ERRORS[n][3]
    problems = planted_crd_report().get(f"planted-{n}", [])
    assert any(message in p for p in problems), problems


def test_crd_validator_refuses_kinds_it_cannot_check() -> None:
    code, report = validate_crds("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert code == 1 and "no schema" in report["errors"][0]["problems"][0]


# ----------------------------------------------------------------------------- generated files


def test_chart_copies_equal_their_sources() -> None:
    for path, content in render_module().chart_copies().items():
        assert path.read_text() == content, f"{path.relative_to(ROOT)} is stale: run deploy/render.py"


def test_plain_manifests_equal_a_fresh_render() -> None:
    helm_sdk()
    for path, content in render_module().manifest_files().items():
        assert path.exists() and path.read_text() == content, f"{path.relative_to(ROOT)} is stale: run deploy/render.py"
        assert path.read_text().startswith("# Generated by deploy/render.py; do not edit")


def test_plain_manifests_are_complete_for_kubectl() -> None:
    for folder in (DEPLOY / "kubernetes", DEPLOY / "kubernetes" / "gpu"):
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert all((folder / r).exists() for r in kustomization["resources"])
        objects = [o for o in yaml.safe_load_all((folder / "embed-server.yaml").read_text()) if o]
        kinds = {o["kind"] for o in objects}
        assert {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
        assert all(o["metadata"]["namespace"] == "embed-server" for o in objects)
        assert not [o for o in objects if o["kind"] == "Pod"]  # no `helm test` hook


def test_yamllint() -> None:
    result = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint"), "-f", "parsable", "."],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- behaviour: the pod


def test_probes_hit_the_right_endpoints() -> None:
    container = server_container(one(render(), "Deployment"))
    assert container["startupProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert env_value(container, "EMBED_PORT") == "8000"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # a model may load for minutes
    slow = server_container(one(render({"probes": {"startup": {"failureThreshold": 720}}}), "Deployment"))
    assert slow["startupProbe"]["failureThreshold"] == 720


def test_prestop_is_a_native_sleep() -> None:
    container = server_container(one(render({"preStopSleepSeconds": 15}), "Deployment"))
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}  # no exec: no shell needed


@pytest.mark.parametrize(
    "values, expected",
    [
        ({}, 10 + 30 + 10),
        ({"server": {"drainTimeoutS": 90}}, 10 + 90 + 10),
        ({"server": {"drainTimeoutS": 12.5}}, 10 + 13 + 10),
    ],
)
def test_grace_period_is_derived_from_prestop_and_drain(values: Obj, expected: int) -> None:
    spec = one(render(values), "Deployment")["spec"]["template"]["spec"]
    container = server_container(one(render(values), "Deployment"))
    drain = float(env_value(container, "EMBED_DRAIN_TIMEOUT_S"))
    assert spec["terminationGracePeriodSeconds"] == expected
    assert spec["terminationGracePeriodSeconds"] > container["lifecycle"]["preStop"]["sleep"]["seconds"] + drain + 5


def test_grace_period_too_small_fails_clearly() -> None:
    message = render_error({"terminationGracePeriodSeconds": 45})  # 10 + 30 + 5 = 45: not above
    assert "terminationGracePeriodSeconds 45 is too small" in message and "= 45" in message
    ok = one(render({"terminationGracePeriodSeconds": 46}), "Deployment")
    assert ok["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 46


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_pods_are_locked_down(profile: str | None) -> None:
    objects = render(profile_values(profile))
    for spec in pod_specs(objects):
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "resources" in container
    for account in of_kind(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_security_context_defaults_and_openshift() -> None:
    spec = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsGroup"] == 0
    assert "fsGroup" not in spec["securityContext"]  # no recursive chown of a model volume
    openshift = one(render(profile_values("openshift-values.yaml")), "Deployment")["spec"]["template"]["spec"]
    assert "runAsUser" not in openshift["securityContext"] and "runAsGroup" not in openshift["securityContext"]
    assert openshift["securityContext"]["runAsNonRoot"] is True


def test_writable_paths_are_volumes() -> None:
    deployment = one(render({"shm": {"sizeLimit": "2Gi"}}), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in server_container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"]
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert env_value(server_container(deployment), "EMBED_DATA_DIR").startswith("/tmp/")


def test_torch_threads_follow_the_cpu_quota() -> None:
    def threads(values: Obj) -> str | None:
        return env_value(server_container(one(render(values), "Deployment")), "EMBED_TORCH_THREADS")

    assert threads({}) == "2"
    assert threads({"resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": "3500m"}}}) == "3"
    assert threads({"resources": {"limits": {"cpu": 8}, "requests": {"cpu": 8}}, "server": {"workers": 2}}) == "4"
    assert threads({"server": {"torchThreads": 6}}) == "6"
    assert threads(profile_values("gpu-values.yaml")) is None


def test_request_above_limit_fails_clearly() -> None:
    message = render_error({"resources": {"requests": {"cpu": "8"}}})
    assert "resources.requests.cpu (8) exceeds resources.limits.cpu (2)" in message


def test_images_are_pinned() -> None:
    for profile in [None, *PROFILES]:
        for spec in pod_specs(render(profile_values(profile))):
            for container in spec["containers"]:
                image = container["image"]
                tag = image.rsplit("@", 1)[0].rsplit(":", 1)
                assert len(tag) == 2 and tag[1] and tag[1] != "latest", image
    digest = "sha256:" + "a" * 64
    deployment = one(render({"image": {"digest": digest}}), "Deployment")
    assert server_container(deployment)["image"] == f"embed-server:0.1.0-cpu@{digest}"


def test_env_and_args_from_values() -> None:
    deployment = one(
        render(
            {
                "server": {"maxBatchTokens": 4096, "corsOrigin": ["https://a", "https://b"], "packing": False},
                "env": {"HF_HUB_OFFLINE": "0"},
                "args": ["--no-access-log"],
            }
        ),
        "Deployment",
    )
    container = server_container(deployment)
    assert env_value(container, "EMBED_MAX_BATCH_TOKENS") == "4096"
    assert env_value(container, "EMBED_CORS_ORIGIN") == "https://a,https://b"
    assert env_value(container, "EMBED_PACKING") == "false"
    assert env_value(container, "HF_HUB_OFFLINE") == "0"
    assert container["args"] == ["--no-access-log"]
    assert "command" not in container  # the image's entrypoint: embed-server serve --host 0.0.0.0
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))


def test_env_the_chart_owns_cannot_be_overridden_twice() -> None:
    assert "env.EMBED_MODEL" in render_error({"env": {"EMBED_MODEL": "x"}})
    assert "extraEnv EMBED_WORKERS" in render_error(
        {"server": {"workers": 2}, "extraEnv": [{"name": "EMBED_WORKERS", "value": "3"}]}
    )


# ----------------------------------------------------------------------------- behaviour: secrets


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_no_api_key_in_args_or_plain_env(profile: str | None) -> None:
    values = profile_values(profile)
    objects = render(values)
    keys = values.get("auth", {}).get("apiKeys", [])
    for spec in pod_specs(objects):
        for container in spec["containers"]:
            assert not [a for a in container.get("args", []) + container.get("command", []) if "--api-key" in a]
            assert "value" not in env_of(container).get("EMBED_API_KEY", {})
            spec_text = json.dumps(container)
            assert not [k for k in keys if k in spec_text]


def test_api_key_on_the_command_line_is_refused() -> None:
    assert "--api-key in args" in render_error({"args": ["--api-key", "secret"]})
    assert "--api-key in args" in render_error({"args": ["--api-key=secret"]})
    assert "env.EMBED_API_KEY" in render_error({"env": {"EMBED_API_KEY": "secret"}})


def test_tenants_file_and_api_keys_come_from_the_secret() -> None:
    values = profile_values("tenants-values.yaml")
    objects = render(values)
    deployment = one(objects, "Deployment")
    container = server_container(deployment)
    secret = one(objects, "Secret")
    env = env_of(container)
    assert env["EMBED_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "api-keys"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "auth")
    assert mount["readOnly"] is True and "subPath" not in mount  # the kubelet refreshes the file
    assert env["EMBED_API_KEYS_FILE"]["value"] == mount["mountPath"] + "/tenants.yaml"
    import base64

    tenants = yaml.safe_load(base64.b64decode(secret["data"]["tenants.yaml"]))
    assert tenants == {"tenants": values["auth"]["tenants"]}
    assert base64.b64decode(secret["data"]["api-keys"]).decode() == ",".join(values["auth"]["apiKeys"])


def test_existing_secret_is_used_as_given() -> None:
    objects = render({"auth": {"existingSecret": {"name": "keys", "apiKeysKey": "k", "tenantsKey": "t.yaml"}}})
    assert not of_kind(objects, "Secret")
    deployment = one(objects, "Deployment")
    env = env_of(server_container(deployment))
    assert env["EMBED_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "keys", "key": "k"}
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "auth")
    assert volume["secret"]["secretName"] == "keys"
    assert volume["secret"]["items"] == [{"key": "t.yaml", "path": "tenants.yaml"}]


def test_config_changes_roll_the_pods_but_tenant_changes_do_not() -> None:
    def annotations(values: Obj) -> Obj:
        return one(render(values), "Deployment")["spec"]["template"]["metadata"].get("annotations", {})

    card = {"name": "m", "source": "/models/m", "pooling": "mean"}
    base = annotations({"model": {"name": "m", "cards": {"m": card}}})
    changed = annotations({"model": {"name": "m", "cards": {"m": {**card, "pooling": "cls"}}}})
    assert base["checksum/config"] != changed["checksum/config"]
    assert (
        annotations({"auth": {"apiKeys": ["a"]}})["checksum/secret"]
        != annotations({"auth": {"apiKeys": ["b"]}})["checksum/secret"]
    )
    # Another card (a new BlueGreen revision's) leaves the running pods alone.
    other = {"other": {**card, "source": "/models/other"}}
    assert annotations({"model": {"name": "m", "cards": {"m": card, **other}}}) == base
    tenant = {"keys": ["k1"], "requests_per_minute": 10}
    assert annotations({"auth": {"tenants": {"t": tenant}}}) == annotations(
        {"auth": {"tenants": {"t": {**tenant, "requests_per_minute": 20}}}}
    )


# ----------------------------------------------------------------------------- behaviour: models and rollout


def test_model_card_from_a_configmap() -> None:
    card = {"name": "support-minilm", "source": "/models/support", "pooling": "mean", "max_tokens": 256}
    objects = render({"model": {"name": "support", "cards": {"support": card}}})
    config = one(objects, "ConfigMap")
    assert yaml.safe_load(config["data"]["support.yaml"]) == card
    deployment = one(objects, "Deployment")
    container = server_container(deployment)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "cards")
    assert mount["readOnly"] is True
    assert env_value(container, "EMBED_MODEL") == mount["mountPath"] + "/support.yaml"


def test_model_volume_is_mounted_read_only() -> None:
    objects = render({"model": {"volume": {"enabled": True, "folder": "bge-m3", "size": "20Gi"}}})
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    deployment = one(objects, "Deployment")
    container = server_container(deployment)
    assert env_value(container, "EMBED_MODEL") == "/models/bge-m3"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"], "readOnly": True}
    existing = render({"model": {"volume": {"enabled": True, "existingClaim": "weights", "folder": "x"}}})
    assert not of_kind(existing, "PersistentVolumeClaim")


def test_pods_carry_model_and_revision() -> None:
    deployment = one(render(profile_values("recreate-values.yaml")), "Deployment")
    template = deployment["spec"]["template"]["metadata"]
    assert template["labels"]["embed-server/model"] == "all-MiniLM-L6-v2"
    assert template["labels"]["embed-server/model-revision"] == "2"
    assert template["annotations"]["embed-server/model-fingerprint"] == "a1b2c3d4e5f6"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # The revision is not in the (immutable) selector outside BlueGreen.
    assert "embed-server/model-revision" not in deployment["spec"]["selector"]["matchLabels"]


def test_rolling_update_never_drops_capacity() -> None:
    strategy = one(render(), "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_blue_green_switches_traffic_with_one_value() -> None:
    values = profile_values("bluegreen-values.yaml")
    blue = render(values)
    green = render(merged(values, {"rollout": {"blueGreen": {"activeRevision": "v2"}}}))
    deployments = {d["metadata"]["name"]: d for d in of_kind(blue, "Deployment")}
    assert set(deployments) == {"embed-server-v1", "embed-server-v2"}
    for name, deployment in deployments.items():
        revision = name.rsplit("-", 1)[1]
        assert deployment["spec"]["selector"]["matchLabels"]["embed-server/model-revision"] == revision
    assert deployments["embed-server-v2"]["spec"]["replicas"] == 1
    assert env_value(server_container(deployments["embed-server-v2"]), "EMBED_MODEL") == (
        "/etc/embed-server/cards/minilm-support-v2.yaml"
    )
    main = {"blue": one(blue, "Service", "embed-server"), "green": one(green, "Service", "embed-server")}
    assert main["blue"]["spec"]["selector"]["embed-server/model-revision"] == "v1"
    assert main["green"]["spec"]["selector"]["embed-server/model-revision"] == "v2"
    # Only the Service changes: the pods of both revisions stay as they are.
    assert of_kind(blue, "Deployment") == of_kind(green, "Deployment")
    # Each revision is reachable (smoke tests) and scraped through its own Service.
    for revision in ("v1", "v2"):
        service = one(blue, "Service", f"embed-server-{revision}")
        assert service["spec"]["selector"]["embed-server/model-revision"] == revision
        assert service["metadata"]["labels"]["embed-server/scrape"] == "true"
    assert "embed-server/scrape" not in main["blue"]["metadata"]["labels"]
    assert len(of_kind(blue, "PodDisruptionBudget")) == 2


def test_blue_green_refuses_an_unknown_active_revision() -> None:
    values = merged(profile_values("bluegreen-values.yaml"), {"rollout": {"blueGreen": {"activeRevision": "v3"}}})
    assert 'activeRevision "v3" is not one of' in render_error(values)


# ----------------------------------------------------------------------------- behaviour: GPU


def test_gpu_profile() -> None:
    deployment = one(render(profile_values("gpu-values.yaml")), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    container = server_container(deployment)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert env_value(container, "EMBED_DEVICE") == "cuda"
    assert env_value(container, "EMBED_WORKERS") == "1"
    assert container["image"].endswith("-cuda")
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    four = server_container(one(render(merged(profile_values("gpu-values.yaml"), {"gpu": {"count": 4}})), "Deployment"))
    assert env_value(four, "EMBED_WORKERS") == "4" and four["resources"]["limits"]["nvidia.com/gpu"] == 4


def test_topology_spread_over_zones_and_hosts() -> None:
    spec = one(render(), "Deployment")["spec"]["template"]["spec"]
    constraints = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(constraints) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in constraints.values():
        assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


# ----------------------------------------------------------------------------- behaviour: scaling


def test_hpa_scales_on_queued_tokens() -> None:
    objects = render(profile_values("cpu-values.yaml"))
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "embed_queue_tokens"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "4096"}
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert "replicas" not in one(objects, "Deployment")["spec"]  # the HPA owns the count
    assert not of_kind(objects, "ScaledObject")


def test_prometheus_adapter_rule_serves_the_hpa_metric() -> None:
    adapter = yaml.safe_load((DEPLOY / "prometheus-adapter" / "values.yaml").read_text())
    [rule] = adapter["rules"]["custom"]
    assert rule["name"]["as"] == "embed_queue_tokens"
    assert "embed_queue_tokens" in rule["seriesQuery"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert "sum(" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]


def test_keda_scales_on_the_same_query() -> None:
    objects = render(profile_values("keda-values.yaml"))
    scaled = one(objects, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["query"] == 'sum(embed_queue_tokens{namespace="embed-server",service="embed-server"})'
    assert trigger["metadata"]["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 16)
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    assert "replicas" not in one(objects, "Deployment")["spec"]


def test_hpa_and_keda_are_mutually_exclusive() -> None:
    message = render_error({"autoscaling": {"enabled": True}, "keda": {"enabled": True}})
    assert "/keda/enabled" in message


def test_pdb() -> None:
    pdb = one(render(), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert one(render({"podDisruptionBudget": {"minAvailable": "50%"}}), "PodDisruptionBudget")["spec"] == {
        "minAvailable": "50%",
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": pdb["spec"]["selector"],
    }
    assert "not both" in render_error({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}})


# ----------------------------------------------------------------------------- behaviour: network, Redis, monitoring


def test_network_policy() -> None:
    objects = render(profile_values("cpu-values.yaml"))  # in-chart Redis
    policy = one(objects, "NetworkPolicy", "embed-server")
    [ingress] = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    peers = ingress["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers
    assert any(
        p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus" for p in peers
    )
    dns, redis = policy["spec"]["egress"]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert redis["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert redis["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    redis_policy = one(objects, "NetworkPolicy", "embed-server-redis")
    assert redis_policy["spec"]["egress"] == []
    assert (
        redis_policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "server"
    )
    external = one(render(profile_values("external-redis-values.yaml")), "NetworkPolicy")
    assert external["spec"]["egress"][1] == {
        "ports": [{"port": 6380, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}],
    }
    assert "redisCidrs" in render_error({"redis": {"external": {"url": "redis://r:6379/0"}}})
    assert not of_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_in_chart_redis() -> None:
    objects = render(profile_values("cpu-values.yaml"))
    redis = one(objects, "StatefulSet")
    service = one(objects, "Service", "embed-server-redis")
    assert service["spec"]["clusterIP"] == "None" and redis["spec"]["serviceName"] == "embed-server-redis"
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--maxmemory") + 1] == "1gb"
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    assert (
        container["readinessProbe"]["exec"]["command"][0] == "redis-cli"
        and "ping" in container["livenessProbe"]["exec"]["command"]
    )
    assert "volumeClaimTemplates" not in redis["spec"]
    url = env_value(server_container(one(objects, "Deployment")), "EMBED_REDIS_URL")
    assert url == "redis://embed-server-redis.embed-server.svc:6379/0"
    assert env_value(server_container(one(objects, "Deployment")), "EMBED_CACHE_PREFIX") == "embed-server:"


def test_redis_password_from_a_secret() -> None:
    objects = render({"redis": {"enabled": True, "auth": {"existingSecret": "redis-auth"}}})
    env = env_of(server_container(one(objects, "Deployment")))
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "redis-password"}
    assert env["EMBED_REDIS_URL"]["value"].startswith("redis://:$(REDIS_PASSWORD)@")
    names = [e["name"] for e in server_container(one(objects, "Deployment"))["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("EMBED_REDIS_URL")  # $(VAR) needs it defined first
    redis_env = env_of(one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0])
    assert "REDISCLI_AUTH" in redis_env


def test_external_redis_url_from_a_secret() -> None:
    objects = render(profile_values("external-redis-values.yaml"))
    env = env_of(server_container(one(objects, "Deployment")))
    assert env["EMBED_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "embed-redis", "key": "url"}
    assert not of_kind(objects, "StatefulSet")


def test_prometheus_rule_embeds_the_rules_file() -> None:
    rule = one(render(profile_values("cpu-values.yaml")), "PrometheusRule")
    source = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_service_monitor_scrapes_the_http_port() -> None:
    objects = render(profile_values("cpu-values.yaml"))
    monitor = one(objects, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    service = one(objects, "Service", "embed-server")
    assert service["spec"]["ports"][0]["name"] == "http"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_grafana_dashboard_configmap() -> None:
    objects = render(profile_values("cpu-values.yaml"))
    dashboard = one(objects, "ConfigMap", "embed-server-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = json.loads((DEPLOY / "grafana" / "embed-server.json").read_text())
    assert json.loads(dashboard["data"]["embed-server.json"]) == source


def test_ingress_exposes_only_the_api() -> None:
    ingress = one(render(profile_values("cpu-values.yaml")), "Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/v1"]


def test_helm_test_hook_checks_the_api() -> None:
    [pod] = of_kind(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "/ready" in script and "/v1/embeddings" in script


def test_readme_documents_every_value() -> None:
    """Each key the schema defines (down to free-form maps and lists) is in the chart README's table."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def resolve(node: Obj) -> Obj:
        return schema["definitions"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    def paths(node: Obj, prefix: str) -> list[str]:
        out = []
        for key, child in resolve(node).get("properties", {}).items():
            path = f"{prefix}{key}"
            out += [path, *paths(resolve(child), path + ".")]
        return out

    def documented(path: str) -> bool:
        parts = path.split(".")
        ancestors = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
        return any(f"`{a}`" in readme or f"`{a}.*`" in readme for a in ancestors)

    readme = (CHART / "README.md").read_text()
    leaves = [
        p for p in paths(schema, "") if p != "global" and not any(q.startswith(p + ".") for q in paths(schema, ""))
    ]
    missing = [p for p in leaves if not documented(p)]
    assert not missing, f"values missing from deploy/helm/embed-server/README.md: {missing}"
