// Compiles the CLI into one self-contained binary per platform: `bun scripts/build.ts [host|target...]`.
import { rmSync } from "node:fs";

const ALL = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "windows-x64"] as const;
const args = process.argv.slice(2);
const targets = args.length === 0 ? ALL : args;

for (const t of targets) {
  const host = t === "host";
  // P2P_BIN names the host binary's path (so parallel checkouts or agents do not overwrite each other's build).
  const outfile = host
    ? (process.env.P2P_BIN ?? "dist/p2p-orchestrator")
    : `dist/p2p-orchestrator-${t}${t.startsWith("windows") ? ".exe" : ""}`;
  const result = await Bun.build({
    // The hashing Worker is loaded at run time, so it must be embedded as an entrypoint of its own (src/sync/hasher.ts).
    entrypoints: ["src/main.ts", "src/sync/hash-worker.ts"],
    minify: true,
    bytecode: true,
    sourcemap: "linked",
    define: { "process.env.NODE_ENV": '"production"' },
    compile: {
      ...(host ? {} : { target: `bun-${t}` as Bun.Build.CompileTarget }),
      outfile,
      autoloadDotenv: false,
      autoloadBunfig: false,
    },
  });
  if (!result.success) {
    for (const m of result.logs) console.error(m);
    process.exit(1);
  }
  // --sourcemap embeds the map in the binary and also writes a sidecar we do not ship.
  rmSync(`${outfile.replace(/\.exe$/, "")}.map`, { force: true });
  rmSync(`${outfile}.map`, { force: true });
  for (const o of result.outputs) if (o.kind === "sourcemap") rmSync(o.path, { force: true });
  console.log(`built ${outfile}`);
}
