// The subset of kustomize deploy/kubernetes uses, so the manifests can be checked where no
// kustomize or kubectl is installed: resources (files and directories), namespace, images,
// replicas and strategic-merge patches (lists of named items merge by name, other lists replace).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

interface Kustomization {
  resources?: string[];
  namespace?: string;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  replicas?: Array<{ name: string; count: number }>;
  patches?: Array<{ path: string }>;
}

export function readYamlDocuments(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

/** What `kustomize build dir` prints, as objects. */
export function kustomize(dir: string): Manifest[] {
  const [kustomization] = readYamlDocuments(join(dir, 'kustomization.yaml')) as unknown as Kustomization[];
  let manifests = (kustomization!.resources ?? []).flatMap((resource) => {
    const path = join(dir, resource);
    return statSync(path).isDirectory() ? kustomize(path) : readYamlDocuments(path);
  });
  for (const { path } of kustomization!.patches ?? []) {
    for (const patch of readYamlDocuments(join(dir, path))) {
      const index = manifests.findIndex((manifest) => manifest.kind === patch.kind && manifest.metadata.name === patch.metadata.name);
      if (index < 0) throw new Error(`patch ${path}: no ${patch.kind} ${patch.metadata.name}`);
      manifests[index] = strategicMerge(manifests[index], patch) as Manifest;
    }
  }
  for (const { name, count } of kustomization!.replicas ?? []) {
    const target = manifests.find((manifest) => manifest.metadata.name === name && manifest.spec);
    if (!target) throw new Error(`replicas: no ${name}`);
    (target.spec as { replicas: number }).replicas = count;
  }
  if (kustomization!.images) manifests = manifests.map((manifest) => withImages(manifest, kustomization!.images!));
  if (kustomization!.namespace) for (const manifest of manifests) manifest.metadata.namespace = kustomization!.namespace;
  return manifests;
}

function strategicMerge(target: unknown, patch: unknown): unknown {
  if (Array.isArray(target) && Array.isArray(patch)) {
    const named = (list: unknown[]) => list.every((item) => typeof item === 'object' && item !== null && 'name' in item);
    if (!named(target) || !named(patch)) return patch;
    const merged = [...target] as Array<{ name: string }>;
    const added: Array<{ name: string }> = [];
    for (const item of patch as Array<{ name: string }>) {
      const index = merged.findIndex((existing) => existing.name === item.name);
      if (index < 0) added.push(item);
      else merged[index] = strategicMerge(merged[index], item) as { name: string };
    }
    // kustomize puts the patch's new items first.
    return [...added, ...merged];
  }
  if (isObject(target) && isObject(patch)) {
    const merged: Record<string, unknown> = { ...target };
    for (const [key, value] of Object.entries(patch)) merged[key] = key in target ? strategicMerge(target[key], value) : value;
    return merged;
  }
  return patch;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function withImages(manifest: Manifest, images: NonNullable<Kustomization['images']>): Manifest {
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (!isObject(value)) return value;
    const copy = Object.fromEntries(Object.entries(value).map(([key, field]) => [key, rewrite(field)]));
    if (typeof copy.image === 'string') {
      const [name, tag] = copy.image.split(':');
      const image = images.find((candidate) => candidate.name === name);
      if (image) copy.image = `${image.newName ?? name}:${image.newTag ?? tag}`;
    }
    return copy;
  };
  return rewrite(manifest) as Manifest;
}
