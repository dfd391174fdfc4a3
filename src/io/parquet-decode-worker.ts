/**
 * Worker side of `readParquetRows`: hyparquet decodes pages synchronously, and a corrupt page can
 * send it into a loop that never returns (an RLE run longer than its page grows a plain Array
 * without bound). Decoding here lets the caller's timer end such a read by terminating this
 * thread — safe, as no native call runs in it — instead of hanging the whole process.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";

export interface DecodeRequest {
  id: number;
  path: string;
  columns: string[];
  start: number;
  end: number;
}
export type DecodeReply = { id: number; rows: Record<string, unknown>[] } | { id: number; error: string };

declare const self: Worker;

self.onmessage = async (ev: MessageEvent<DecodeRequest>) => {
  const { id, path, columns, start, end } = ev.data;
  try {
    // Opened per request (a footer read): the file at a path may have been replaced since.
    const file = await asyncBufferFromFile(path);
    const metadata = await parquetMetadataAsync(file);
    const rows = (await parquetReadObjects({ file, metadata, columns, rowStart: start, rowEnd: end, utf8: false })) as Record<string, unknown>[];
    self.postMessage({ id, rows } satisfies DecodeReply);
  } catch (e) {
    self.postMessage({ id, error: String((e as Error)?.message ?? e).split("\n")[0]!.slice(0, 200) } satisfies DecodeReply);
  }
};
