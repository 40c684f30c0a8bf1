// Bundle and minify src/main.js and src/main.css into the package's static folder.
// `node build.mjs` builds once; `--watch` rebuilds on change; SOURCEMAP=1 adds source maps.
import * as esbuild from "esbuild";

const options = {
  entryPoints: { app: "src/main.js", style: "src/main.css" },
  outdir: "../{{ cookiecutter.package_name }}/static",
  bundle: true,
  minify: true,
  sourcemap: process.env.SOURCEMAP === "1",
  target: ["es2020"],
  format: "iife",
  legalComments: "none",
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
