// What every model source is: read access to the named files of one model folder, whether the
// folder is on disk, behind a URL or already in memory. The sources (source-*.ts) implement it
// and source.ts chooses between them; this file needs neither.

/** Read access to the files of one model folder. File names are relative (`model.safetensors`, `sub/x.json`). */
export interface ModelSource {
  /** Where the files come from, for messages (a folder path, a base URL, `memory`). */
  readonly location: string;
  /**
   * The whole file.
   * @throws ModelSourceError `not_found`, `http_error`, `network_error`, `truncated`, `read_failed`, `bad_name`
   */
  readFile(name: string): Promise<Uint8Array>;
  /**
   * The file as strict UTF-8 text.
   * @throws ModelSourceError as {@link ModelSource.readFile}; ModelFormatError `not_utf8`
   */
  readText(name: string): Promise<string>;
  /** Whether the file exists (for a URL source: a HEAD request answered 2xx rather than 404). */
  exists(name: string): Promise<boolean>;
}
