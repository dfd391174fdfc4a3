/**
 * Preloaded by bunfig.toml before every test file. CI boxes are 2 shared cores and ORT
 * session creation can take seconds there, so the 5 s default per-test timeout is too tight;
 * a hung test still fails, just later.
 */
import { setDefaultTimeout } from "bun:test";
setDefaultTimeout(60_000);
