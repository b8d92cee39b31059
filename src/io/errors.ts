// Typed errors of the loaders. Every message names the file and the problem, and
// `code` is a stable string so callers (the CLI, the fuzz harness) can branch on it.

/** Stable codes of {@link ModelFormatError}: what is wrong inside a file. */
export type ModelFormatCode =
  | "too_short"
  | "header_too_large"
  | "header_out_of_range"
  | "not_utf8"
  | "invalid_json"
  | "not_object"
  | "forbidden_key"
  | "bad_metadata"
  | "bad_entry"
  | "unknown_dtype"
  | "bad_shape"
  | "bad_offsets"
  | "offsets_out_of_range"
  | "size_mismatch"
  | "unaligned_offsets"
  | "overlapping_offsets"
  | "bad_index"
  | "unsafe_path"
  | "missing_tensor"
  | "duplicate_tensor"
  | "shape_mismatch"
  | "unsupported"
  | "non_finite"
  | "bad_tokenizer";

/** Stable codes of {@link ModelSourceError}: a file that cannot be fetched or read. */
export type ModelSourceCode = "not_found" | "http_error" | "network_error" | "truncated" | "read_failed" | "bad_name";

/**
 * A model file that was read but is malformed or untrusted content was refused.
 *
 * @example
 * ```ts
 * try { readSafetensors(bytes, "model.safetensors"); }
 * catch (e) { if (e instanceof ModelFormatError) console.error(e.file, e.code, e.reason); }
 * ```
 */
export class ModelFormatError extends Error {
  /** The file that is malformed (as named in the source, e.g. `model.safetensors`). */
  readonly file: string;
  /** What is wrong, without the file name. */
  readonly reason: string;
  /** A stable machine-readable code for the problem. */
  readonly code: ModelFormatCode;

  /** Builds the error; the message is `${file}: ${reason}`. */
  constructor(file: string, code: ModelFormatCode, reason: string) {
    super(`${file}: ${reason}`);
    this.name = "ModelFormatError";
    this.file = file;
    this.reason = reason;
    this.code = code;
  }
}

/** A model file that is missing or could not be fetched (HTTP status, network failure, truncated body). */
export class ModelSourceError extends Error {
  /** The file that could not be read. */
  readonly file: string;
  /** What went wrong, without the file name. */
  readonly reason: string;
  /** A stable machine-readable code for the problem. */
  readonly code: ModelSourceCode;
  /** The HTTP status when the failure was an HTTP response. */
  readonly status: number | undefined;

  /** Builds the error; the message is `${file}: ${reason}`. */
  constructor(file: string, code: ModelSourceCode, reason: string, options: { status?: number; cause?: unknown } = {}) {
    super(`${file}: ${reason}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ModelSourceError";
    this.file = file;
    this.reason = reason;
    this.code = code;
    this.status = options.status;
  }
}

/** An optional peer dependency that a feature needs is not installed. */
export class MissingDependencyError extends Error {
  /** The npm package name to install. */
  readonly packageName: string;
  /** Stable code for the problem. */
  readonly code = "missing_dependency";

  /** Builds the error with an install hint for `packageName`. */
  constructor(packageName: string, feature: string, options: { cause?: unknown } = {}) {
    super(
      `${feature} needs the optional package ${packageName}; install it with \`npm install ${packageName}\``,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "MissingDependencyError";
    this.packageName = packageName;
  }
}
