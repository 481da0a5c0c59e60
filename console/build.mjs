// Bundle the console into hub/http/static/ (served at / by the HTTP server).
//   node build.mjs           one build (what `make console` runs)
//   node build.mjs --watch   rebuild on change while developing
// Output: index.html (from index.html here, with hashed asset names filled in),
// assets/app-<hash>.js and assets/style-<hash>.css. The HTTP server serves index.html
// at / and this folder under /static/ (hub/http/console.py). Nothing is fetched from
// elsewhere at run time.
import * as esbuild from "esbuild";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, "..", "hub", "http", "static");
const assets = path.join(out, "assets");
const watch = process.argv.includes("--watch");
const BASE = "static/"; // where index.html (served at /) finds the assets

const options = {
  absWorkingDir: here,
  entryPoints: { app: "src/main.js", style: "src/styles.css" },
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome109", "firefox115", "safari16"],
  minify: !watch,
  sourcemap: true,
  entryNames: "[name]-[hash]",
  outdir: assets,
  metafile: true,
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
};

async function writeIndex(metafile) {
  const names = {};
  for (const [file, meta] of Object.entries(metafile.outputs)) {
    if (meta.entryPoint === "src/main.js") names.app = path.basename(file);
    if (meta.entryPoint === "src/styles.css") names.style = path.basename(file);
  }
  // esbuild names a CSS entry's output .css; a JS entry importing no CSS has none.
  const html = (await readFile(path.join(here, "index.html"), "utf8"))
    .replaceAll("%APP_JS%", `${BASE}assets/${names.app}`)
    .replaceAll("%APP_CSS%", `${BASE}assets/${names.style}`);
  await writeFile(path.join(out, "index.html"), html);
  // Drop assets of earlier builds (a stale file would be served forever otherwise).
  const keep = new Set(Object.keys(metafile.outputs).map((f) => path.basename(f)));
  for (const f of await readdir(assets)) if (!keep.has(f)) await rm(path.join(assets, f));
}

await mkdir(assets, { recursive: true });
if (watch) {
  const ctx = await esbuild.context({
    ...options,
    plugins: [{ name: "index", setup: (b) => b.onEnd((r) => r.metafile && writeIndex(r.metafile)) }],
  });
  await ctx.watch();
  console.log(`watching; output in ${out}`);
} else {
  const result = await esbuild.build(options);
  await writeIndex(result.metafile);
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`console built into ${path.relative(process.cwd(), out)} (${Math.round(bytes / 1024)} KiB)`);
}
