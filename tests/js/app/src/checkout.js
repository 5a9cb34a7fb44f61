// Checkout: where an order's card is charged.
export function chargeCard(order) {
  if (order.total > order.limit) {
    throw new Error(`card declined for order ${order.id}`);
  }
  return order.total;
}

export function processOrder(order) {
  const charged = chargeCard(order);
  return { id: order.id, charged };
}
