// Lints YAML files the way yamllint's default configuration does in strict mode (every problem fails), with the
// repository's settings: lines up to 140 characters, no `---` required, one space before an inline comment. It replaces
// yamllint (a Python tool from apt) so that the tests need nothing the build does not install: it runs on the `yaml`
// package from tools/package-lock.json.
//
//   node tools/lint-yaml.mjs [file or folder ...]      (default: infra/k8s pipelines; folders are searched for *.yaml, *.yml)
//
// Exit 0: no problem. Exit 1: one line per problem on stdout in yamllint's parsable format,
// "file:line:column: [error] message (rule)". Exit 2: bad usage (a path that does not exist, no YAML files).
//
// Rules (yamllint's names): syntax, key-duplicates, indentation (spaces: consistent, indent-sequences: true; block
// scalars and multi-line strings are not checked), trailing-spaces, line-length (max 140, long unbreakable words
// allowed), new-line-at-end-of-file, new-lines (unix), empty-lines (max 2, none at the start or end), colons, commas,
// hyphens, brackets, braces (no extra spaces), comments (a space after #, at least 1 space before an inline comment),
// comments-indentation, truthy (only true and false as booleans; keys not checked).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Lexer, LineCounter, Parser, parseAllDocuments, visit, isScalar, CST } from "yaml";

const maxLineLength = 140;
const maxEmptyLines = 2;
const minSpacesBeforeComment = 1;
const truthy = new Set(["YES", "Yes", "yes", "NO", "No", "no", "TRUE", "True", "true", "FALSE", "False", "false", "ON", "On", "on", "OFF", "Off", "off"]);
const allowedTruthy = new Set(["false", "true"]); // listed sorted, as the message names them

const here = dirname(fileURLToPath(import.meta.url));
const defaults = [join(here, "..", "infra", "k8s"), join(here, "..", "pipelines")];

function yamlFiles(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const child = join(path, entry.name);
      if (entry.isDirectory()) return yamlFiles(child);
      return /\.ya?ml$/.test(entry.name) ? [child] : [];
    });
}

/** All problems in one file's text, as { line, col, message, rule } with 1-based line and column. */
export function lint(text) {
  const problems = [];
  const lines = new LineCounter();
  const position = (offset) => lines.linePos(offset); // { line, col }, both 1-based
  const report = (offset, message, rule) => problems.push({ ...position(offset), message, rule });

  const documents = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: false, keepSourceTokens: true });
  const syntaxErrors = documents.flatMap((doc) => (Array.isArray(doc.errors) ? doc.errors : []));
  if (syntaxErrors.length > 0) {
    // Like yamllint, report the first syntax error alone: the other rules need a well-formed stream.
    const error = syntaxErrors[0];
    const [line, col] = error.linePos?.[0] ? [error.linePos[0].line, error.linePos[0].col] : [1, 1];
    const message = error.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    return [{ line, col, message: `syntax error: ${message}`, rule: "syntax" }];
  }

  checkLines(text, report);
  checkTokens(text, report);
  const cst = [...new Parser().parse(text)];
  checkIndentation(cst, position, report);
  for (const doc of documents) {
    visit(doc, {
      Map(_, map) {
        const seen = new Set();
        for (const pair of map.items) {
          if (!isScalar(pair.key)) continue;
          const key = String(pair.key.value);
          if (key === "<<") continue; // merge keys may repeat
          if (seen.has(key)) report(pair.key.range[0], `duplication of key "${key}" in mapping`, "key-duplicates");
          seen.add(key);
        }
      },
      Scalar(key, scalar) {
        if (key === "key" || scalar.type !== "PLAIN" || scalar.srcToken === undefined) return;
        if (hasExplicitTag(scalar)) return;
        const source = scalar.srcToken.source;
        if (truthy.has(source) && !allowedTruthy.has(source)) {
          report(scalar.range[0], `truthy value should be one of [${[...allowedTruthy].join(", ")}]`, "truthy");
        }
      },
    });
  }
  return sorted(problems);
}

function hasExplicitTag(scalar) {
  // The composer records a tag on a scalar only when it was written (`!!str yes`) or resolved from a non-default type;
  // a plain `yes` in YAML 1.2's core schema is an untagged string.
  return typeof scalar.tag === "string";
}

function sorted(problems) {
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}

function checkLines(text, report) {
  if (text.length === 0) return;
  const crlf = text.indexOf("\r\n");
  if (crlf >= 0) report(crlf, "wrong new line character: expected \\n", "new-lines");
  if (!text.endsWith("\n")) report(text.length, "no new line character at the end of file", "new-line-at-end-of-file");

  const rows = text.split("\n");
  if (text.endsWith("\n")) rows.pop(); // the text after the last newline is not a line
  let offset = 0;
  let blank = 0;
  let leading = true;
  rows.forEach((raw, index) => {
    const row = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const trimmed = row.replace(/[ \t]+$/, "");
    if (trimmed.length < row.length) report(offset + trimmed.length, "trailing spaces", "trailing-spaces");
    if (row.length > maxLineLength && !isUnbreakable(row)) {
      report(offset + maxLineLength, `line too long (${row.length} > ${maxLineLength} characters)`, "line-length");
    }
    if (row.length === 0) {
      blank++;
      const last = index === rows.length - 1;
      if (leading) {
        if (blank === 1) report(offset, `too many blank lines (at the start of the file)`, "empty-lines");
      } else if (last) {
        report(offset, `too many blank lines (${blank} > 0)`, "empty-lines");
      }
    } else {
      if (!leading && blank > maxEmptyLines) report(offset - 1, `too many blank lines (${blank} > ${maxEmptyLines})`, "empty-lines");
      blank = 0;
      leading = false;
    }
    offset += raw.length + 1;
  });
}

function isUnbreakable(row) {
  // yamllint's allow-non-breakable-words: a long URL or word alone on its line (after `- ` or `# `) is accepted.
  let start = row.length - row.trimStart().length;
  if (row[start] === "#") {
    while (row[start] === "#") start++;
    start++;
  } else if (row[start] === "-") {
    start += 2;
  }
  return start < row.length && !row.slice(start).includes(" ");
}

/** The lexer's tokens with their offsets and types; its zero-width markers are left out. */
function tokens(text) {
  const list = [];
  let offset = 0;
  let scalarNext = false;
  for (const source of new Lexer().lex(text)) {
    if (source === CST.DOCUMENT || source === CST.FLOW_END) continue;
    if (source === CST.SCALAR) {
      scalarNext = true;
      continue;
    }
    const type = scalarNext ? "scalar" : CST.tokenType(source) ?? "scalar";
    scalarNext = false;
    list.push({ type, source, offset });
    offset += source.length;
  }
  return list;
}

function checkTokens(text, report) {
  const list = tokens(text);
  const at = (i) => list[i] ?? { type: "end", source: "", offset: text.length };
  // A space token right after a newline (or at the start) is indentation, not a gap between two tokens.
  const isGap = (i) => at(i).type === "space" && i > 0 && at(i - 1).type !== "newline";
  const endsLine = (i) => ["newline", "comment", "end"].includes(at(i).type);

  list.forEach((token, i) => {
    switch (token.type) {
      case "map-value-ind":
        if (isGap(i - 1) && at(i - 2).type !== "alias") report(at(i - 1).offset, "too many spaces before colon", "colons");
        if (at(i + 1).type === "space" && at(i + 1).source.length > 1 && !endsLine(i + 2)) {
          report(at(i + 1).offset + 1, "too many spaces after colon", "colons");
        }
        break;
      case "seq-item-ind":
        if (at(i + 1).type === "space" && at(i + 1).source.length > 1 && !endsLine(i + 2)) {
          report(at(i + 1).offset + 1, "too many spaces after hyphen", "hyphens");
        }
        break;
      case "comma":
        if (isGap(i - 1)) report(at(i - 1).offset, "too many spaces before comma", "commas");
        if (at(i + 1).type === "space" && at(i + 1).source.length > 1 && !endsLine(i + 2)) {
          report(at(i + 1).offset + 1, "too many spaces after comma", "commas");
        } else if (at(i + 1).type !== "space" && !endsLine(i + 1) && !at(i + 1).type.endsWith("-end")) {
          report(at(i + 1).offset, "too few spaces after comma", "commas");
        }
        break;
      case "flow-seq-start":
      case "flow-map-start": {
        const [what, rule] = token.type === "flow-seq-start" ? ["brackets", "brackets"] : ["braces", "braces"];
        if (at(i + 1).type === "space" && !endsLine(i + 2)) report(at(i + 1).offset, `too many spaces inside ${what}`, rule);
        break;
      }
      case "flow-seq-end":
      case "flow-map-end": {
        const [what, rule] = token.type === "flow-seq-end" ? ["brackets", "brackets"] : ["braces", "braces"];
        if (isGap(i - 1)) report(at(i - 1).offset, `too many spaces inside ${what}`, rule);
        break;
      }
      case "comment":
        checkComment(list, i, text, report);
        break;
      default:
        break;
    }
  });
}

function checkComment(list, i, text, report) {
  const comment = list[i];
  const body = comment.source.replace(/^#+/, "");
  const shebang = comment.offset === 0 && comment.source.startsWith("#!");
  if (body.length > 0 && !/^\s/.test(body) && !shebang) {
    report(comment.offset + comment.source.length - body.length, "missing starting space in comment", "comments");
  }
  const lineStart = text.lastIndexOf("\n", comment.offset - 1) + 1;
  const before = text.slice(lineStart, comment.offset);
  if (before.trim().length > 0) {
    // An inline comment: count the spaces between it and the content before it.
    const spaces = before.length - before.trimEnd().length;
    if (spaces < minSpacesBeforeComment) report(comment.offset, "too few spaces before comment", "comments");
    return;
  }

  // A comment on its own line is indented like the content after it, or like the content (or block comment) before
  // it when that is deeper (yamllint's comments-indentation).
  const column = before.length;
  const content = (token) => !["space", "newline", "comment"].includes(token.type);
  let next = 0; // the end of the file counts as column 0
  for (let j = i + 1; j < list.length; j++) {
    if (content(list[j])) {
      next = lineIndent(text, list[j].offset);
      break;
    }
  }
  let previous = 0;
  let j = i - 1;
  while (j >= 0 && (list[j].type === "space" || list[j].type === "newline")) j--;
  if (j >= 0 && list[j].type === "comment" && isOwnLine(text, list[j].offset)) {
    previous = list[j].offset - (text.lastIndexOf("\n", list[j].offset - 1) + 1);
  } else {
    for (; j >= 0; j--) {
      // A block scalar's text starts on the line after its `|` or `>`: the content before is the header's line.
      if (content(list[j]) && !isBlockScalarText(list, j)) {
        previous = Math.max(lineIndent(text, list[j].offset), next);
        break;
      }
    }
  }
  if (column !== next && column !== previous) {
    report(comment.offset, "comment not indented like content", "comments-indentation");
  }
}

function isBlockScalarText(list, j) {
  if (list[j].type !== "scalar" || list[j - 1]?.type !== "newline") return false;
  let k = j - 2;
  while (k >= 0 && (list[k].type === "space" || list[k].type === "comment")) k--;
  return list[k]?.type === "block-scalar-header";
}

function isOwnLine(text, offset) {
  return text.slice(text.lastIndexOf("\n", offset - 1) + 1, offset).trim().length === 0;
}

function lineIndent(text, offset) {
  const start = text.lastIndexOf("\n", offset - 1) + 1;
  let end = start;
  while (text[end] === " ") end++;
  return end - start;
}

/** Block mappings and sequences nest by one consistent step; a sequence under a key is indented too. */
function checkIndentation(cst, position, report) {
  let unit = 0;
  const column = (offset) => position(offset).col - 1;
  const line = (offset) => position(offset).line;
  const expect = (node, base) => {
    const found = column(firstOffset(node));
    if (unit === 0 && found > base) unit = found - base;
    const expected = base + (unit || 2);
    if (found !== expected) report(firstOffset(node), `wrong indentation: expected ${expected} but found ${found}`, "indentation");
  };

  const walk = (node) => {
    if (node === undefined || node === null) return;
    if (node.type === "block-map") {
      const base = column(firstOffset(node));
      for (const item of node.items) {
        const indicator = item.sep?.find((t) => t.type === "map-value-ind");
        if (isBlockCollection(item.value) && indicator !== undefined && line(firstOffset(item.value)) > line(indicator.offset)) {
          expect(item.value, base);
        }
        walk(item.value);
      }
    } else if (node.type === "block-seq") {
      const base = column(firstOffset(node));
      for (const item of node.items) {
        const indicator = item.start.find((t) => t.type === "seq-item-ind");
        if (isBlockCollection(item.value) && indicator !== undefined && line(firstOffset(item.value)) > line(indicator.offset)) {
          expect(item.value, base);
        }
        walk(item.value);
      }
    }
  };

  for (const token of cst) {
    if (token.type !== "document") continue;
    if (isBlockCollection(token.value)) {
      const found = column(firstOffset(token.value));
      if (found !== 0) report(firstOffset(token.value), `wrong indentation: expected 0 but found ${found}`, "indentation");
    }
    walk(token.value);
  }
}

function isBlockCollection(node) {
  return node?.type === "block-map" || node?.type === "block-seq";
}

/** Where a block collection's first entry starts: its first key, `?` or `-` (after any anchor or tag). */
function firstOffset(node) {
  const item = node.items[0];
  const indicator = item.start.find((t) => t.type === "seq-item-ind" || t.type === "explicit-key-ind" || t.type === "anchor" || t.type === "tag");
  if (indicator !== undefined) return indicator.offset;
  if (item.key) return item.key.offset;
  return node.offset;
}

// Run as a command (not when imported).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const roots = process.argv.length > 2 ? process.argv.slice(2) : defaults;
  const missing = roots.filter((root) => !existsSync(root));
  if (missing.length > 0) {
    console.error(`lint-yaml: ${missing.join(", ")} does not exist`);
    process.exit(2);
  }
  const files = roots.flatMap(yamlFiles);
  if (files.length === 0) {
    console.error(`lint-yaml: no YAML files under ${roots.join(", ")}`);
    process.exit(2);
  }
  let count = 0;
  for (const file of files) {
    for (const p of lint(readFileSync(file, "utf8"))) {
      console.log(`${file}:${p.line}:${p.col}: [error] ${p.message} (${p.rule})`);
      count++;
    }
  }
  if (count > 0) {
    console.error(`lint-yaml: ${count} problem(s) in ${files.length} file(s)`);
    process.exit(1);
  }
  console.log(`lint-yaml: ${files.length} file(s) clean`);
}
