// Builds the order chat page into dist/ (or --outdir DIR): order-chat.html, order-chat.js,
// order-chat.css and the icon fonts they use. Deterministic: the same sources and lockfile
// give the same bytes, which `make web-check` (and a test) compare with the shipped dist/.
//
//   node build.mjs [--outdir DIR] [--mode production|development]
//
// development keeps React's development build, where StrictMode mounts twice (tests use it).

import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as esbuild from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * @param {{outdir?: string, mode?: "production" | "development"}} [options]
 */
export async function buildPage({ outdir = path.join(HERE, "dist"), mode = "production" } = {}) {
  const production = mode === "production";
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  await esbuild.build({
    absWorkingDir: HERE,
    entryPoints: { "order-chat": "src/main.jsx" },
    outdir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome111", "firefox115", "safari16"],
    jsx: "automatic",
    minify: production,
    sourcemap: false,
    legalComments: production ? "eof" : "inline",
    define: { "process.env.NODE_ENV": JSON.stringify(mode) },
    loader: { ".eot": "file", ".svg": "file", ".ttf": "file", ".woff": "file", ".woff2": "file" },
    assetNames: "[name]-[hash]",
    charset: "utf8",
    logLevel: "warning",
  });
  await copyFile(path.join(HERE, "public", "order-chat.html"), path.join(outdir, "order-chat.html"));
  return outdir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { outdir: { type: "string" }, mode: { type: "string", default: "production" } },
  });
  if (values.mode !== "production" && values.mode !== "development") {
    throw new Error(`--mode must be production or development, not ${values.mode}`);
  }
  const outdir = await buildPage({
    outdir: values.outdir && path.resolve(values.outdir),
    mode: values.mode,
  });
  console.log(`built ${path.relative(process.cwd(), outdir) || "."} (${values.mode})`);
}
