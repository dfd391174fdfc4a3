/**
 * JSONL in and out. Reading: LLaVA SFT files (`{"id", "image": "<relative path>",
 * "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]}`)
 * with their image folder, into `images` batches. Writing: one JSON object per row, atomically.
 *
 * @example
 * for await (const b of readLlavaJsonl("data/sft.jsonl", "data/images", { batchSize: 32, onBadRow })) …
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, join, normalize, sep } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { buildImages } from "../arrow/build.ts";
import type { ImageRow } from "../arrow/schemas.ts";
import { writeAllSync, type BatchWriter } from "./arrow-ipc.ts";
import { AtomicFile } from "./atomic-file.ts";
import { failOnBadRow, type ReaderOptions } from "./image-rows.ts";
import { InputError } from "../util/errors.ts";

/**
 * Lines of a text file, streamed (1-based line numbers); a trailing line without newline counts.
 * A missing file is an InputError (code "file not found", `where.file`): `data.jsonl: file not found`.
 */
export async function* readLines(path: string): AsyncGenerator<{ line: number; text: string }> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new InputError("file not found", { code: "file not found", where: { file: path } });
  const dec = new TextDecoder();
  let rest = "";
  let line = 0;
  for await (const chunk of file.stream()) {
    rest += dec.decode(chunk, { stream: true });
    // Walk the buffer with an index; cut the unfinished tail once per chunk (not once per line).
    let start = 0;
    let nl: number;
    while ((nl = rest.indexOf("\n", start)) >= 0) {
      yield { line: ++line, text: rest.slice(start, nl).replace(/\r$/, "") };
      start = nl + 1;
    }
    rest = rest.slice(start);
  }
  rest += dec.decode();
  if (rest.length > 0) yield { line: ++line, text: rest.replace(/\r$/, "") };
}

interface LlavaItem {
  id: string;
  image: string;
  prompt: string;
  reference: string | null;
}

/** Check one parsed line; returns the item or a reason it is unusable. */
export function parseLlavaLine(v: unknown): LlavaItem | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "expected a JSON object";
  const o = v as Record<string, unknown>;
  const id = typeof o.id === "string" || typeof o.id === "number" ? String(o.id) : null;
  if (id === null || id === "") return "missing 'id'";
  if (typeof o.image !== "string" || o.image === "") return "missing 'image' (a relative path)";
  if (!Array.isArray(o.conversations)) return "missing 'conversations'";
  let prompt: string | null = null;
  let reference: string | null = null;
  for (const turn of o.conversations as unknown[]) {
    if (typeof turn !== "object" || turn === null) return "a conversation turn is not an object";
    const t = turn as Record<string, unknown>;
    if (typeof t.value !== "string") return "a conversation turn has no string 'value'";
    if (t.from === "human" && prompt === null) prompt = t.value.replace(/<image>\s*/g, "").trim();
    else if (t.from === "gpt" && reference === null && prompt !== null) reference = t.value;
  }
  if (prompt === null || prompt === "") return "no human turn with a question";
  return { id, image: o.image, prompt, reference };
}

/**
 * `images` batches from a LLaVA JSONL file; image paths resolve against `imageDir`. A bad JSON
 * line or a missing image goes to `onBadRow` (id `file:line`, or the row id with the line in the reason).
 * Only the first human question and the first answer after it are kept (one prompt per row).
 */
export async function* readLlavaJsonl(path: string, imageDir: string, opts: ReaderOptions = {}): AsyncGenerator<RecordBatch> {
  const batchSize = opts.batchSize ?? 32;
  const onBad = opts.onBadRow ?? failOnBadRow;
  let left = opts.count ?? Infinity;
  const root = normalize(imageDir);
  let pending: { item: LlavaItem; line: number }[] = [];

  const flush = async (): Promise<RecordBatch | null> => {
    const items = pending;
    pending = [];
    const bytes = await Promise.all(
      items.map(async ({ item, line }) => {
        const p = normalize(isAbsolute(item.image) ? item.image : join(root, item.image));
        if (!isAbsolute(item.image) && p !== root && !p.startsWith(root + sep)) {
          onBad(item.id, `${path}:${line}: image path '${item.image}' leaves the image folder`);
          return null;
        }
        try {
          return new Uint8Array(await readFile(p));
        } catch (e) {
          onBad(item.id, `${path}:${line}: image '${item.image}' cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
          return null;
        }
      }),
    );
    const rows: ImageRow[] = [];
    items.forEach(({ item, line }, i) => {
      const b = bytes[i];
      if (b) rows.push({ id: item.id, image: b, prompt: item.prompt, reference: item.reference, meta: JSON.stringify({ source: `${path}:${line}`, image: item.image }) });
    });
    return rows.length > 0 ? buildImages(rows) : null;
  };

  for await (const { line, text } of readLines(path)) {
    if (left <= 0) break;
    if (text.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      onBad(`${path}:${line}`, `${path}:${line}: bad JSON (${(e as Error).message.split("\n")[0]})`);
      continue;
    }
    const item = parseLlavaLine(v);
    if (typeof item === "string") {
      onBad(`${path}:${line}`, `${path}:${line}: ${item}`);
      continue;
    }
    pending.push({ item, line });
    left--;
    if (pending.length === batchSize) {
      const b = await flush();
      if (b) yield b;
    }
  }
  if (pending.length > 0) {
    const b = await flush();
    if (b) yield b;
  }
}

/** Rows as JSON lines (objects from `toRows`), atomically written to a path, or to a file descriptor. */
export class JsonlWriter implements BatchWriter {
  private readonly file: AtomicFile | null;
  private readonly enc = new TextEncoder();
  rows = 0;

  constructor(
    target: { path: string } | { fd: number },
    private readonly toRows: (batch: RecordBatch) => Iterable<unknown>,
  ) {
    this.file = "path" in target ? new AtomicFile(target.path) : null;
    this.fd = "fd" in target ? target.fd : -1;
  }

  private readonly fd: number;

  write(batch: RecordBatch): void {
    this.writeRows(this.toRows(batch));
  }

  /** Append rows given as JSON-serialisable objects. */
  writeRows(rows: Iterable<unknown>): void {
    let s = "";
    for (const r of rows) {
      s += JSON.stringify(r) + "\n";
      this.rows++;
    }
    if (!s) return;
    const u8 = this.enc.encode(s);
    if (this.file) this.file.write(u8);
    else writeAllSync(this.fd, u8);
  }

  commit(): void {
    if (this.file?.open) this.file.commit();
  }

  abort(): void {
    this.file?.abort();
  }
}
