// Validates Kubernetes manifests against the API schemas: every YAML document under a folder (default infra/k8s) is
// parsed and checked with the matching model class of kubernetes-models (core APIs) or @kubernetes-models/keda
// (ScaledJob, TriggerAuthentication). A kustomization.yaml is checked for its own shape and for resources that exist.
//
//   node tools/validate-k8s.mjs [folder]
//
// Exit 0: every document is valid. Exit 1: one line per problem on stderr, "file: kind/name: error".
// Exit 2: bad usage (the folder does not exist or holds no YAML).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(process.argv[2] ?? join(here, "..", "infra", "k8s"));

if (!existsSync(root) || !statSync(root).isDirectory()) {
  console.error(`validate-k8s: ${root} is not a folder`);
  process.exit(2);
}

// apiVersion → module holding its model classes. A group not listed here is an error: add it, never skip it.
const modules = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "rbac.authorization.k8s.io/v1": "kubernetes-models/rbac.authorization.k8s.io/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
};

const kustomizationKeys = new Set([
  "apiVersion", "kind", "namespace", "namePrefix", "nameSuffix", "labels", "commonLabels", "commonAnnotations",
  "resources", "components", "images", "patches", "replacements", "configMapGenerator", "secretGenerator",
  "generatorOptions", "replicas",
]);

function yamlFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return yamlFiles(path);
      return /\.ya?ml$/.test(entry.name) ? [path] : [];
    });
}

function describe(error) {
  // Model.validate() throws an error whose `errors` are Ajv errors: name the path of each.
  if (Array.isArray(error?.errors) && error.errors.length > 0) {
    return error.errors
      .map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : ""}`)
      .join("; ");
  }
  return error?.message ?? String(error);
}

function checkKustomization(doc, path, file, problems) {
  const where = `${file}: Kustomization`;
  for (const key of Object.keys(doc)) {
    if (!kustomizationKeys.has(key)) problems.push(`${where}: unknown key '${key}'`);
  }
  if (doc.apiVersion !== "kustomize.config.k8s.io/v1beta1") {
    problems.push(`${where}: apiVersion must be kustomize.config.k8s.io/v1beta1, found '${doc.apiVersion}'`);
  }
  for (const resource of doc.resources ?? []) {
    if (typeof resource !== "string" || !existsSync(join(dirname(path), resource))) {
      problems.push(`${where}: resource '${resource}' does not exist`);
    }
  }
  for (const image of doc.images ?? []) {
    if (typeof image?.name !== "string" || (image.newName === undefined && image.newTag === undefined && image.digest === undefined)) {
      problems.push(`${where}: images entries need a name and newName, newTag or digest`);
    }
  }
}

const files = yamlFiles(root);
if (files.length === 0) {
  console.error(`validate-k8s: no YAML files under ${root}`);
  process.exit(2);
}

const problems = [];
let checked = 0;
for (const path of files) {
  const file = relative(process.cwd(), path);
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      problems.push(`${file}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const object = doc.toJS();
    if (object === null || object === undefined) continue; // an empty document (a trailing ---)
    const kind = object.kind ?? "(no kind)";
    const name = object.metadata?.name ?? "(no name)";
    if (kind === "Kustomization") {
      checkKustomization(object, path, file, problems);
      checked++;
      continue;
    }
    const specifier = modules[object.apiVersion];
    if (specifier === undefined) {
      problems.push(`${file}: ${kind}/${name}: apiVersion '${object.apiVersion}' has no schema here (known: ${Object.keys(modules).join(", ")})`);
      continue;
    }
    const models = await import(specifier);
    const Model = Object.values(models).find((m) => typeof m === "function" && m.kind === kind && m.apiVersion === object.apiVersion);
    if (Model === undefined) {
      problems.push(`${file}: ${kind}/${name}: no kind '${kind}' in ${object.apiVersion}`);
      continue;
    }
    if (object.metadata?.name === undefined) {
      problems.push(`${file}: ${kind}/${name}: metadata.name is required`);
    }
    try {
      new Model(object).validate();
      checked++;
    } catch (error) {
      problems.push(`${file}: ${kind}/${name}: ${describe(error)}`);
    }
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  console.error(`validate-k8s: ${problems.length} problem(s) in ${files.length} file(s)`);
  process.exit(1);
}
console.log(`validate-k8s: ${checked} document(s) in ${files.length} file(s) valid`);
