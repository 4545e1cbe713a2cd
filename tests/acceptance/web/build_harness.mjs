// Builds the browser test harness (harness.jsx) with clients/web's own esbuild and packages,
// React in development mode (StrictMode mounts effects twice there, as in a dev server).
//
//   node tests/acceptance/web/build_harness.mjs --outdir DIR

import { copyFile, mkdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(HERE, "../../../clients/web");
const esbuild = createRequire(path.join(WEB, "package.json"))("esbuild");

const { values } = parseArgs({ options: { outdir: { type: "string" } } });
if (!values.outdir) throw new Error("--outdir is required");
const outdir = path.resolve(values.outdir);

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
await esbuild.build({
  absWorkingDir: WEB,
  entryPoints: { harness: path.join(HERE, "harness.jsx") },
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  jsx: "automatic",
  nodePaths: [path.join(WEB, "node_modules")],
  define: { "process.env.NODE_ENV": '"development"' },
  logLevel: "warning",
});
await copyFile(path.join(HERE, "harness.html"), path.join(outdir, "harness.html"));
