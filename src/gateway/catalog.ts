import { createHash } from 'node:crypto';
import type { Prompt, Resource, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Config, UpstreamConfig } from '../config/schema.js';
import type { Catalog } from '../upstreams/connection.js';

/**
 * What a caller sees through `/mcp`: the tools, resources, templates and prompts of the upstreams
 * it may reach, under names that carry the upstream's name.
 *
 * Naming (documented in the README):
 * - a tool or prompt `search` of upstream `notion` is `notion-search`. Upstream names are
 *   `[a-z0-9_]+`, so the first `-` always ends the upstream's part: names never collide between
 *   upstreams and always lead back to theirs. Characters outside the MCP tool-name alphabet
 *   (`A-Za-z0-9_.-`) become `_`, and a name over 128 characters is shortened with a hash; such
 *   names are resolved through the upstream's catalog;
 * - a resource `file:///notes.md` of upstream `notion` is `gatehouse://notion/file:///notes.md`
 *   (templates alike), resolved by stripping the prefix.
 * On `/mcp/<upstream>`, one upstream's names are served unchanged.
 *
 * Visibility is the same for listing and calling: the upstream's `tools_to_execute`, and the
 * caller's key (its upstreams and its `upstream/tool` patterns). A hidden tool is as unknown as a
 * tool that does not exist.
 */
export const NAME_SEPARATOR = '-';
const MAX_NAME = 128;
const NAME_UNSAFE = /[^A-Za-z0-9_.-]/g;
const URI_SCHEME = 'gatehouse://';

/** What the caller may reach: null means everything. */
export interface Reach {
  upstreams: readonly string[] | null;
  /** `upstream/tool` patterns, `*` matching anything. */
  tools: readonly string[] | null;
}

const globCache = new Map<string, RegExp>();
export function globMatch(pattern: string, value: string): boolean {
  let re = globCache.get(pattern);
  if (!re) {
    re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`);
    if (globCache.size > 1000) globCache.clear();
    globCache.set(pattern, re);
  }
  return re.test(value);
}

export function upstreamReachable(upstream: string, reach: Reach): boolean {
  return reach.upstreams === null || reach.upstreams.includes(upstream);
}

/** Whether `tool` of `upstream` is exposed by the operator and reachable by the caller. */
export function toolVisible(upstream: UpstreamConfig, tool: string, reach: Reach): boolean {
  if (!upstreamReachable(upstream.name, reach)) return false;
  if (!upstream.tools_to_execute.some((p) => globMatch(p, tool))) return false;
  return reach.tools === null || reach.tools.some((p) => globMatch(p, `${upstream.name}/${tool}`));
}

/** The exposed names of one upstream's tools or prompts, and back. */
export interface NameMap {
  toExposed: Map<string, string>;
  toOriginal: Map<string, string>;
}

const nameMaps = new WeakMap<readonly { name: string }[], NameMap>();

/** Exposed names for a list of tools or prompts (memoized per catalog list). */
export function namesFor(upstream: string, items: readonly { name: string }[]): NameMap {
  const cached = nameMaps.get(items);
  if (cached) return cached;
  const map: NameMap = { toExposed: new Map(), toOriginal: new Map() };
  for (const { name } of items) {
    let exposed = `${upstream}${NAME_SEPARATOR}${name.replace(NAME_UNSAFE, '_')}`;
    if (exposed.length > MAX_NAME || map.toOriginal.has(exposed)) {
      const hash = createHash('sha256').update(name).digest('base64url').slice(0, 8).replace(/-/g, '_');
      exposed = `${exposed.slice(0, MAX_NAME - 9)}_${hash}`;
    }
    map.toExposed.set(name, exposed);
    map.toOriginal.set(exposed, name);
  }
  nameMaps.set(items, map);
  return map;
}

/** The upstream part of an exposed tool or prompt name. */
export function upstreamOfName(exposed: string): string | undefined {
  const i = exposed.indexOf(NAME_SEPARATOR);
  return i > 0 ? exposed.slice(0, i) : undefined;
}

export function exposedUri(upstream: string, uri: string): string {
  return `${URI_SCHEME}${upstream}/${uri}`;
}

export function parseExposedUri(uri: string): { upstream: string; uri: string } | undefined {
  if (!uri.startsWith(URI_SCHEME)) return undefined;
  const rest = uri.slice(URI_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  return { upstream: rest.slice(0, slash), uri: rest.slice(slash + 1) };
}

/** The caller's view of one upstream's catalog. */
export interface UpstreamView {
  config: UpstreamConfig;
  catalog: Catalog;
}

/** The upstreams the caller may reach on this endpoint, with the catalogs it sees. */
export function reachableUpstreams(
  config: Config,
  catalogOf: (upstream: UpstreamConfig) => Catalog | undefined,
  reach: Reach,
  only?: string,
): UpstreamView[] {
  const views: UpstreamView[] = [];
  for (const upstream of config.upstreams) {
    if (only !== undefined && upstream.name !== only) continue;
    if (!upstreamReachable(upstream.name, reach)) continue;
    const catalog = catalogOf(upstream);
    if (catalog) views.push({ config: upstream, catalog });
  }
  return views;
}

export function listTools(views: UpstreamView[], reach: Reach, prefixed: boolean): Tool[] {
  const out: Tool[] = [];
  for (const { config, catalog } of views) {
    const tools = catalog.tools;
    const names = namesFor(config.name, tools);
    for (const tool of tools) {
      if (!toolVisible(config, tool.name, reach)) continue;
      out.push(prefixed ? { ...tool, name: names.toExposed.get(tool.name)! } : tool);
    }
  }
  return out;
}

export function listPrompts(views: UpstreamView[], prefixed: boolean): Prompt[] {
  const out: Prompt[] = [];
  for (const { config, catalog } of views) {
    const prompts = catalog.prompts;
    const names = namesFor(config.name, prompts);
    for (const prompt of prompts) out.push(prefixed ? { ...prompt, name: names.toExposed.get(prompt.name)! } : prompt);
  }
  return out;
}

export function listResources(views: UpstreamView[], prefixed: boolean): Resource[] {
  return views.flatMap(({ config, catalog }) =>
    catalog.resources.map((r) => (prefixed ? { ...r, uri: exposedUri(config.name, r.uri) } : r)),
  );
}

export function listResourceTemplates(views: UpstreamView[], prefixed: boolean): ResourceTemplate[] {
  return views.flatMap(({ config, catalog }) =>
    catalog.resourceTemplates.map((t) => (prefixed ? { ...t, uriTemplate: exposedUri(config.name, t.uriTemplate) } : t)),
  );
}
