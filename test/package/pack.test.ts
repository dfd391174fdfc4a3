/**
 * The package as users get it: `npm pack` the project into a temp folder, install the tarball
 * into a temporary project (unpacked into its node_modules as npm would; the dependencies are
 * linked from this checkout's node_modules so the test runs offline), then run the README's
 * library example there under Bun, importing `clipflow` and `clipflow/operators` by name.
 * Also checks every `exports` subpath resolves from the installed package.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  private?: boolean;
  engines: Record<string, string>;
  exports: Record<string, unknown>;
  dependencies: Record<string, string>;
};
const work = mkdtempSync(join(tmpdir(), "clipflow-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The README block marked `<!-- example:library -->`. */
function readmeExample(): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const m = readme.match(/<!-- example:library -->\s*```ts\n([\s\S]*?)```/);
  if (!m) throw new Error("README.md has no <!-- example:library --> ts block");
  return m[1]!;
}

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 90_000 });
  return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? "" };
}

describe("package", () => {
  test("package.json: public, Bun-only, exports map with types first", () => {
    expect(pkg.private).toBeUndefined();
    expect(Object.keys(pkg.engines)).toEqual(["bun"]);
    expect(Object.keys(pkg.exports)).toEqual([".", "./flow", "./operators", "./scheduler", "./models", "./train", "./io", "./cluster", "./demo", "./package.json"]);
    for (const [k, v] of Object.entries(pkg.exports)) if (k !== "./package.json") expect(Object.keys(v as object)[0]).toBe("types");
  });

  test(
    "npm pack -> install into a temp project -> the README example runs under Bun",
    () => {
      const packed = run("npm", ["pack", "--pack-destination", work, "--silent"], root);
      expect(packed.code).toBe(0);
      const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
      expect(tgz).toBe(`${pkg.name}-${(JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version}.tgz`);

      const proj = join(work, "app");
      const nm = join(proj, "node_modules");
      mkdirSync(join(nm, pkg.name), { recursive: true });
      writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
      // Install = unpack the tarball as the package; link its dependencies (and rxjs for the app).
      expect(run("tar", ["xzf", join(work, tgz!), "-C", join(nm, pkg.name), "--strip-components=1"], proj).code).toBe(0);
      for (const e of readdirSync(join(root, "node_modules"))) {
        if (e === ".bin" || e === pkg.name || e.startsWith(".")) continue;
        symlinkSync(join(root, "node_modules", e), join(nm, e));
      }
      // The tarball holds the library, not the tests or the benchmarks.
      const installed = readdirSync(join(nm, pkg.name)).sort();
      expect(installed).toEqual(expect.arrayContaining(["demo", "operators", "package.json", "src"]));
      expect(installed).not.toContain("test");
      expect(installed).not.toContain("bench");

      writeFileSync(join(proj, "example.ts"), readmeExample());
      const subpaths = Object.keys(pkg.exports).filter((k) => k !== "./package.json").map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`));
      writeFileSync(
        join(proj, "resolve.ts"),
        `${subpaths.map((s, i) => `import * as m${i} from ${JSON.stringify(s)};`).join("\n")}\nconsole.log(JSON.stringify([${subpaths.map((_, i) => `Object.keys(m${i}).length`).join(", ")}]));\n`,
      );

      const ex = run(process.execPath, ["example.ts"], proj);
      expect(ex.err.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("npm warn"))).toEqual([]);
      expect(ex.out.trim().split("\n")).toEqual(["img1: a red circle > a red cat"]);
      expect(ex.code).toBe(0);

      const rs = run(process.execPath, ["resolve.ts"], proj);
      expect(rs.code).toBe(0);
      const counts = JSON.parse(rs.out.trim()) as number[];
      expect(counts.length).toBe(subpaths.length);
      for (const c of counts) expect(c).toBeGreaterThan(3); // every entry point exports its API
    },
    90_000,
  );
});
