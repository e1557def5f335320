// Validates the custom resources of rendered manifests (Prometheus operator, KEDA) offline.
//
//   helm template ... | node deploy/tools/validate-crds.mjs
//
// Reads YAML documents from stdin. Each custom resource is checked twice: by its model's
// validate() (the CRD's OpenAPI schema: types, required fields, enums, patterns), and for unknown
// fields, as `kubectl apply` does by default (--validate=strict), by walking the model's type
// declarations. Built-in kinds (apiVersion v1, apps/v1, ...) are left to kubernetes-validate; any
// other kind is an error, so nothing goes unchecked. Prints a JSON report; exit status 1 on errors.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";

const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
const models = {
  "monitoring.coreos.com/v1/ServiceMonitor": [ServiceMonitor, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor"],
  "monitoring.coreos.com/v1/PodMonitor": [PodMonitor, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": [PrometheusRule, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule"],
  "keda.sh/v1alpha1/ScaledObject": [ScaledObject, "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject"],
  "keda.sh/v1alpha1/TriggerAuthentication": [TriggerAuthentication, "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication"],
};
const builtinGroups = new Set(["", "apps", "batch", "policy", "autoscaling"]);

function isBuiltin(apiVersion) {
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  return builtinGroups.has(group) || group.endsWith(".k8s.io");
}

// ---- the fields each type declares, read from the models' .d.ts files ----
const typeCache = new Map();

function declarationFile(spec, fromFile) {
  const base = spec.startsWith(".") ? join(dirname(fromFile), spec) : join(modules, spec);
  const path = base.replace(/\.js$/, "") + ".d.ts";
  return existsSync(path) ? path : null;
}

// { fields: Map(name -> type text), imports: Map(identifier -> file) } or null for an alias.
function declaredFields(file) {
  if (typeCache.has(file)) return typeCache.get(file);
  const text = readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const target = declarationFile(m[2], file);
    if (target) imports.set(m[1], target);
  }
  const start = text.search(/^export declare class \w+ extends Model</m);
  let result = null;
  if (start >= 0) {
    const fields = new Map();
    const lines = text.slice(start).split("\n").slice(1);
    for (let k = 0; k < lines.length; k++) {
      const m = lines[k].match(/^ {4}"([^"]+)"\??: (.*)$/);
      if (!m) {
        if (/^ {4}constructor\(/.test(lines[k])) break;
        continue;
      }
      let type = m[2];
      while (!/;$/.test(type) || (type.match(/\{/g) || []).length > (type.match(/\}/g) || []).length) {
        type += " " + lines[++k].trim();
      }
      fields.set(m[1], type.replace(/;$/, "").trim());
    }
    result = { fields, imports };
  }
  typeCache.set(file, result);
  return result;
}

function checkValue(value, type, decl, path, errors) {
  if (value === null || typeof value !== "object") return;
  let m;
  if ((m = type.match(/^Array<(.*)>$/))) {
    if (Array.isArray(value)) value.forEach((item, k) => checkValue(item, m[1], decl, `${path}[${k}]`, errors));
  } else if ((m = type.match(/^\{ \[key: string\]: (.*); \}$/))) {
    for (const [key, item] of Object.entries(value)) checkValue(item, m[1], decl, `${path}.${key}`, errors);
  } else if (decl.imports.has(type)) {
    checkObject(value, decl.imports.get(type), path, errors);
  }
}

function checkObject(value, file, path, errors) {
  const decl = declaredFields(file);
  if (!decl || Array.isArray(value)) return; // an alias (Duration, IntOrString, Quantity): a scalar
  for (const [key, item] of Object.entries(value)) {
    if (!decl.fields.has(key)) {
      errors.push(`unknown field "${path ? path + "." : ""}${key}"`);
      continue;
    }
    checkValue(item, decl.fields.get(key), decl, path ? `${path}.${key}` : key, errors);
  }
}

// ---- main ----
const report = { checked: [], skipped: [], errors: [] };
const documents = yaml.loadAll(readFileSync(0, "utf8")).filter((d) => d && typeof d === "object");
for (const doc of documents) {
  const id = `${doc.kind}/${doc.metadata?.name ?? "?"}`;
  const key = `${doc.apiVersion}/${doc.kind}`;
  if (models[key]) {
    const [Model, declaration] = models[key];
    const problems = [];
    try {
      new Model(doc).validate();
    } catch (error) {
      problems.push(error.message);
    }
    checkObject(doc, join(modules, declaration + ".d.ts"), "", problems);
    if (problems.length) report.errors.push({ object: id, problems });
    report.checked.push(id);
  } else if (doc.apiVersion && isBuiltin(doc.apiVersion)) {
    report.skipped.push(id);
  } else {
    report.errors.push({ object: id, problems: [`no schema for ${key}: add its model to deploy/tools/validate-crds.mjs`] });
  }
}
console.log(JSON.stringify(report, null, 2));
process.exit(report.errors.length ? 1 : 0);
