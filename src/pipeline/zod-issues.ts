/**
 * Turns zod issues into pipeline issues with short, specific messages: what was expected, what
 * was found, and a "did you mean" for misspelt keys and names.
 *
 * @example
 * validate(filterOptions, { minScore: "high" }, ["stages", 3, "filter"]);
 * // { issues: [{ path: ["stages", 3, "filter", "minScore"], message: 'expected number, got string "high"' }] }
 */
import type { z } from "zod";
import { describeValue, missingKeyMessage, type PipelineIssue } from "./issues.ts";
import { didYouMean, suggest } from "./suggest.ts";

/** The bits of zod's internal schema definitions needed to walk a schema by key path. */
interface LooseDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
}

const defOf = (schema: z.ZodType): LooseDef => (schema as unknown as { _zod: { def: LooseDef } })._zod.def;

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = defOf(s);
    if (def.innerType) s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else return s;
  }
}

/** The value at `path` inside `root`, or undefined. */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** The schema that validates the value at `path` (choosing discriminated-union branches from `root`). */
function schemaAt(schema: z.ZodType, path: readonly PropertyKey[], root: unknown): z.ZodType | undefined {
  let s: z.ZodType | undefined = unwrap(schema);
  let i = 0;
  while (s) {
    const def = defOf(s);
    if (def.type === "union" && def.discriminator && def.options) {
      // Pick the branch the data selects, then keep walking from the same depth.
      const tag = valueAt(root, [...path.slice(0, i), def.discriminator]);
      const branch = def.options.find((o) => {
        const field = defOf(unwrap(o)).shape?.[def.discriminator!];
        return field !== undefined && (defOf(field).values ?? []).includes(tag);
      });
      s = branch && unwrap(branch);
      continue;
    }
    if (i === path.length) return s;
    const seg = path[i++]!;
    const next: z.ZodType | undefined =
      def.type === "object" ? def.shape?.[String(seg)] : def.type === "array" ? def.element : def.type === "record" ? def.valueType : undefined;
    s = next && unwrap(next);
  }
  return undefined;
}

/** The keys a strict object schema at `path` accepts. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[], root: unknown): string[] {
  const s = schemaAt(schema, path, root);
  const shape = s ? defOf(s).shape : undefined;
  return shape ? Object.keys(shape) : [];
}

const typeNames: Record<string, string> = { int: "integer", object: "map", array: "list" };

function fromZodIssue(issue: z.core.$ZodIssue, schema: z.ZodType, input: unknown): PipelineIssue[] {
  const path = issue.path as PropertyKey[];
  const value = valueAt(input, path);
  const got = describeValue(value);
  switch (issue.code) {
    case "invalid_type":
      if (value === undefined) return [{ path, message: missingKeyMessage }];
      return [{ path, message: `expected ${typeNames[issue.expected] ?? issue.expected}, got ${got}` }];
    case "invalid_value": {
      if (value === undefined) return [{ path, message: missingKeyMessage }];
      const options = issue.values.map((v) => JSON.stringify(v));
      const hint = typeof value === "string" ? didYouMean(value, issue.values.map(String)) : "";
      const expected = options.length === 1 ? options[0] : `one of ${options.join(" | ")}`;
      return [{ path, message: `expected ${expected}, got ${got}${hint}` }];
    }
    case "unrecognized_keys": {
      const known = knownKeys(schema, path, input);
      return issue.keys.map((key) => {
        const hint = didYouMean(key, known);
        const list = hint === "" && known.length > 0 ? `; known keys: ${known.join(", ")}` : "";
        return { path: [...path, key], at: "key" as const, message: `unknown key${hint}${list}` };
      });
    }
    case "too_small":
    case "too_big": {
      const small = issue.code === "too_small";
      const limit = small ? issue.minimum : issue.maximum;
      const inclusive = issue.inclusive ?? true;
      if (issue.origin === "array") {
        const bound = small ? "at least" : "at most";
        return [{ path, message: `expected ${bound} ${String(limit)} item${Number(limit) === 1 ? "" : "s"}, got ${(value as unknown[]).length}` }];
      }
      if (issue.origin === "string") return [{ path, message: small ? "expected a non-empty string" : `expected at most ${String(limit)} characters` }];
      const op = small ? (inclusive ? ">=" : ">") : inclusive ? "<=" : "<";
      return [{ path, message: `expected a number ${op} ${String(limit)}, got ${got}` }];
    }
    case "invalid_union": {
      if (issue.discriminator !== undefined) {
        // `{ knd: stdin }`: say the misspelt key is unknown rather than that `kind` is missing.
        const parent = valueAt(input, path.slice(0, -1));
        if (value === undefined && parent !== null && typeof parent === "object") {
          const typo = Object.keys(parent).find((k) => suggest(k, [issue.discriminator!]) !== undefined);
          if (typo !== undefined)
            return [{ path: [...path.slice(0, -1), typo], at: "key", message: `unknown key (did you mean "${issue.discriminator}"?)` }];
        }
        const opts = ((issue as { options?: unknown[] }).options ?? []).map(String);
        const hint = typeof value === "string" ? didYouMean(value, opts) : "";
        const shown = typeof value === "string" ? JSON.stringify(value) : got;
        const what = value === undefined ? missingKeyMessage : `unknown ${issue.discriminator} ${shown}${hint}`;
        return [{ path, message: `${what}; expected one of ${opts.map((o) => JSON.stringify(o)).join(" | ")}` }];
      }
      return [{ path, message: `${issue.message}, got ${got}` }];
    }
    case "invalid_format":
      return [{ path, message: `${issue.message}, got ${got}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

/**
 * Parses `input` with `schema`; on failure returns the issues with paths prefixed by `base`.
 */
export function validate<S extends z.ZodType>(
  schema: S,
  input: unknown,
  base: readonly PropertyKey[],
): { ok: true; data: z.output<S> } | { ok: false; issues: PipelineIssue[] } {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, data: r.data };
  const issues = r.error.issues.flatMap((i) =>
    fromZodIssue(i, schema, input).map((p) => ({ ...p, path: [...base, ...p.path] })),
  );
  return { ok: false, issues };
}
