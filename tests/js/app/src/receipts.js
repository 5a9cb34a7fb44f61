export function total(items) {
  return items.reduce((sum, item) => sum + item, 0);
}

export function receipt(amount) {
  return `paid ${amount}`;
}
