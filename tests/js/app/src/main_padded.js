// The same app with more code before it, so that the minifier gives its
// functions other names: a second build of the same code.
import { receipt, total } from "./receipts.js";

globalThis.lastReceipt = receipt(total([1, 2, 3]));

export { run } from "./main.js";
