import { processOrder } from "./checkout.js";

export function run() {
  return processOrder({ id: 17, total: 120, limit: 100 });
}
