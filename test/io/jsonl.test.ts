import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseLlavaLine, readLines } from "../../src/io/jsonl.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-jsonl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function all(p: string) {
  const out: [number, string][] = [];
  for await (const { line, text } of readLines(p)) out.push([line, text]);
  return out;
}

describe("readLines", () => {
  test("CRLF, blank lines, a last line without newline, multi-byte characters across stream chunks", async () => {
    const p = join(dir, "a.txt");
    const long = "é".repeat(70_000); // > one 64 KiB stream chunk, 2 bytes per character
    writeFileSync(p, `one\r\n\r\n${long}\nlast`);
    expect(await all(p)).toEqual([[1, "one"], [2, ""], [3, long], [4, "last"]]);
    await expect(all(join(dir, "missing.txt"))).rejects.toThrow("missing.txt: file not found");
  });
});

describe("parseLlavaLine", () => {
  test("first human question (without <image>) and the first answer after it", () => {
    const conv = [
      { from: "gpt", value: "ignored: before any question" },
      { from: "human", value: "<image>\nWhat is it?" },
      { from: "gpt", value: "A star." },
      { from: "human", value: "And now?" },
      { from: "gpt", value: "Still a star." },
    ];
    expect(parseLlavaLine({ id: 3, image: "x.png", conversations: conv })).toEqual({ id: "3", image: "x.png", prompt: "What is it?", reference: "A star." });
    expect(parseLlavaLine({ id: "a", image: "x.png", conversations: [{ from: "human", value: "<image>" }] })).toBe("no human turn with a question");
    expect(parseLlavaLine([])).toBe("expected a JSON object");
    expect(parseLlavaLine({ image: "x", conversations: [] })).toBe("missing 'id'");
    expect(parseLlavaLine({ id: "a", image: "x", conversations: [{ from: "human" }] })).toBe("a conversation turn has no string 'value'");
  });
});
