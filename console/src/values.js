// How sequence values are shown.

/** A value as text, with units and decimal places from the sequence's spec. */
export function formatValue(value, spec, { short = false } = {}) {
  if (value === null || value === undefined) return "no value yet";
  const type = spec?.data_type;
  if (type === "image") return `image (${Math.round((value.length * 3) / 4 / 1024)} KiB)`;
  if (typeof value === "number") {
    const text = spec?.decimal_places !== null && spec?.decimal_places !== undefined
      ? value.toFixed(spec.decimal_places) : String(value);
    return spec?.units ? `${text} ${spec.units}` : text;
  }
  let text = typeof value === "string" ? value : JSON.stringify(value);
  if (short && text.length > 80) text = `${text.slice(0, 77)}…`;
  return text;
}

/** A data: URL for an image value (base64 text); the browser sniffs the format. */
export function imageUrl(value) {
  return `data:image/png;base64,${value}`;
}
