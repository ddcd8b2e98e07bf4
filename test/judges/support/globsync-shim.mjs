// Copied from the team's shared tools (shared/tools/globsync-shim.mjs) so the judges run wherever
// the project is checked out.
// Lets @modelcontextprotocol/conformance (0.1.14+ and 0.2.0 alphas) load on Node 20.
// Those versions import fs.globSync (Node 22+) for their tier-check command only; this load hook
// removes that one import so every other command runs. Use:
//   node --import ../shared/tools/globsync-shim.mjs node_modules/@modelcontextprotocol/conformance/dist/index.js <command> ...
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(`
export async function load(url, ctx, next) {
  const r = await next(url, ctx);
  if (!url.includes('/@modelcontextprotocol/conformance/dist/') || r.source == null) return r;
  let v, s = r.source.toString().replace(/globSync as ([\\w$]+),/, (_, n) => { v = n; return ''; });
  if (!v) return r;
  s = s.replace(/^(#!.*\\n)?/, (m) => m + 'const ' + v + '=()=>{throw new Error("fs.globSync needs Node 22 (tier-check only)")};');
  return { ...r, source: s };
}`));
