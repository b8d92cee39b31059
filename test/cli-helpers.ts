// Running the CLI in-process with its output captured, as every CLI test does.
import { runCli } from "../src/cli/cli.js";

/** Runs `hooklens ...args` in this process; stdout and stderr are captured (not terminals, stderr `columns` wide). */
export async function cli(args: string[], columns = 100): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: { write: (s: string) => { stdout += s; }, isTTY: false },
    stderr: { write: (s: string) => { stderr += s; }, isTTY: false, columns },
    env: {},
  });
  return { code, stdout, stderr };
}
