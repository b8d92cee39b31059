// File names inside a model folder come from untrusted places (a sharded index, a caller).
// A safe name is a relative path of plain segments that cannot leave the folder or URL base.

/**
 * Why `name` is not a safe relative file name, or `undefined` when it is.
 *
 * Refused: empty names, absolute paths (`/x`, `C:x`), URLs or other hosts (`http://`, `//host`),
 * `.` or `..` segments, empty segments, backslashes, control characters, `?`, `#`, `%`
 * (which would change a URL's meaning or hide a `..` behind percent-encoding), and lone surrogates.
 *
 * @example
 * ```ts
 * unsafeNameReason("model-00001-of-00002.safetensors");  // undefined
 * unsafeNameReason("../secrets.safetensors");            // 'has a ".." segment'
 * ```
 */
export function unsafeNameReason(name: unknown): string | undefined {
  if (typeof name !== "string") return "is not a string";
  if (name.length === 0) return "is empty";
  if (name.length > 1024) return "is longer than 1024 characters";
  if (name.includes("\\")) return "contains a backslash";
  if (name.startsWith("/")) return "is an absolute path";
  if (name.includes(":")) return "contains ':' (a URL, another host or a drive letter)";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "contains a control character";
  if (/[?#%]/.test(name)) return "contains '?', '#' or '%'";
  // A lone surrogate has no UTF-8 form: URL encoding throws on it and file systems would rename it.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) return "is not well-formed Unicode (a lone surrogate)";
  for (const segment of name.split("/")) {
    if (segment === "") return "has an empty path segment";
    if (segment === "." || segment === "..") return `has a "${segment}" segment`;
  }
  return undefined;
}
