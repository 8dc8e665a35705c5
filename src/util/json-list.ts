// List parameters as DBC clients send them (custom_port, network_filters, ...): an array, or that array as a JSON
// string; '', 'undefined' and 'null' mean none. Item checks are the caller's.

export function jsonList(list: unknown, errors: { notJson: (text: string) => Error; notArray: (value: unknown) => Error }): unknown[] {
  if (list === undefined || list === null) return [];
  let entries: unknown = list;
  if (typeof list === 'string') {
    const s = list.trim();
    if (s === '' || s === 'undefined' || s === 'null') return [];
    try {
      entries = JSON.parse(s);
    } catch {
      throw errors.notJson(s);
    }
  }
  if (!Array.isArray(entries)) throw errors.notArray(list);
  return entries;
}
