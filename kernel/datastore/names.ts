/**
 * Datastore file names. The datastore is one flat directory: a name is a
 * plain file name inside it, never a path. `nameProblems` lists every rule
 * a candidate breaks (empty list: valid), so the error says all that is
 * wrong at once:
 *
 * - not empty, and at most MAX_NAME_BYTES bytes (the directory entry's size);
 * - not absolute: no leading "/" or "\", no drive letter ("C:");
 * - no path separators ("/" or "\") anywhere;
 * - no ".." anywhere (parent-directory traversal) and not "." itself;
 * - no NUL and no other control characters;
 * - otherwise only letters, digits and "." "_" "-" "+" (ASCII), so a name
 *   means the same on every host file system and in every log.
 */

/** Bytes of the name field in a directory entry (format.ts). */
export const MAX_NAME_BYTES = 48

const ALLOWED = /^[A-Za-z0-9._+-]$/
const encoder = new TextEncoder()

export const nameProblems = (name: string): Array<string> => {
  const problems: Array<string> = []
  if (name.length === 0) return ["the name is empty"]
  if (name.startsWith("/") || name.startsWith("\\")) problems.push("an absolute path (starts with a separator)")
  if (/^[A-Za-z]:/.test(name)) problems.push("an absolute path (starts with a drive letter)")
  if (/[/\\]/.test(name)) problems.push("contains a path separator ('/' or '\\')")
  if (name.includes("..")) problems.push("contains '..' (a parent-directory reference)")
  if (name === ".") problems.push("is '.' (the datastore itself)")
  if (name.includes("\u0000")) problems.push("contains a NUL character")
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point
  if (/[\u0001-\u001f\u007f-\u009f]/.test(name)) problems.push("contains control characters")
  const bytes = encoder.encode(name).length
  if (bytes > MAX_NAME_BYTES) problems.push(`longer than ${MAX_NAME_BYTES} bytes (${bytes})`)
  const others = new Set<string>()
  for (const c of name) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: controls are reported above
    if (!ALLOWED.test(c) && !/[/\\\u0000-\u001f\u007f-\u009f]/.test(c)) others.add(c)
  }
  if (others.size > 0)
    problems.push(
      `contains characters outside A-Z a-z 0-9 . _ - +: ${[...others]
        .slice(0, 8)
        .map((c) => JSON.stringify(c))
        .join(" ")}${others.size > 8 ? " ..." : ""}`
    )
  return problems
}

export const isValidName = (name: string): boolean => nameProblems(name).length === 0
