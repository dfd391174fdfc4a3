import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { stageNames, stageRegistry } from "../../src/pipeline/registry.ts";
import { evalSchema, flowSchema, schedulerSchema } from "../../src/pipeline/schema.ts";

const readme = readFileSync(resolve(import.meta.dir, "../../src/pipeline/README.md"), "utf8");

/** Every key a stage's options may have (all branches of the source's kinds). */
function optionKeys(name: (typeof stageNames)[number]): string[] {
  const keys = new Set<string>();
  const schema = stageRegistry[name].optionsSchema as unknown as { shape?: Record<string, unknown>; options?: { shape: Record<string, unknown> }[] };
  for (const shape of schema.options ? schema.options.map((o) => o.shape) : [schema.shape ?? {}]) for (const k of Object.keys(shape)) keys.add(k);
  return [...keys];
}

describe("src/pipeline/README.md documents every option", () => {
  for (const name of stageNames) {
    test(name, () => {
      const row = readme.split("\n").find((l) => l.startsWith(`| ${name} |`));
      expect(row).toBeDefined();
      for (const key of optionKeys(name)) expect(row).toContain(`\`${key}`);
    });
  }
  test("sections", () => {
    for (const [section, schema] of [["scheduler", schedulerSchema], ["flow", flowSchema], ["eval", evalSchema]] as const) {
      const para = readme.split("\n\n").find((p) => p.startsWith(`**${section}**`));
      expect(para).toBeDefined();
      for (const key of Object.keys(schema.shape)) expect(para).toContain(`\`${key}`);
    }
  });
});
