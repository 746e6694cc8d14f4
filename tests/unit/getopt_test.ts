/** The shared argument loop: GNU-like forms, stopping at the program, errors naming the token. */
import assert from "node:assert/strict";
import { type GetoptMessages, type GetoptOption, GetoptScanner } from "../../cli/getopt.ts";

const options: readonly GetoptOption[] = [
  { long: "membind", short: "m" },
  { long: "mem-tiers" },
  { long: "interleave", short: "i" },
  { long: "help", short: "h" },
];

function messages(abbreviations: boolean): GetoptMessages<GetoptOption> {
  return {
    abbreviations,
    takesValue: (o) => o.long !== "help",
    unknown: (token, spelled) => `unknown ${token} (${spelled})`,
    ambiguous: (spelled, c) => `ambiguous ${spelled}: ${c.map((o) => o.long).join(" ")}`,
    missingValue: (o, spelled) => `${spelled} (${o.long}) needs a value`,
  };
}

/** Every option as [long, spelled, value], then the operands. */
function scanAll(argv: string[], abbreviations = true): [string[][], string[]] {
  const scan = new GetoptScanner(argv, options, messages(abbreviations));
  const seen: string[][] = [];
  for (let o = scan.next(); o !== undefined; o = scan.next()) {
    seen.push([o.option.long, o.spelled, o.value ?? "-"]);
  }
  assert.equal(scan.next(), undefined, "stays finished");
  return [seen, argv.slice(scan.index)];
}

Deno.test("getopt: --opt=value, --opt value, -xVALUE and -x VALUE give the same option", () => {
  const [seen, rest] = scanAll(["--membind=0", "--membind", "1", "-m2", "-m", "3", "prog"]);
  assert.deepEqual(seen, [
    ["membind", "--membind", "0"],
    ["membind", "--membind", "1"],
    ["membind", "-m", "2"],
    ["membind", "-m", "3"],
  ]);
  assert.deepEqual(rest, ["prog"]);
});

Deno.test("getopt: stops at the program, after --, and leaves the program's options alone", () => {
  assert.deepEqual(scanAll(["-i", "0", "ls", "-m", "--help"]), [[["interleave", "-i", "0"]], [
    "ls",
    "-m",
    "--help",
  ]]);
  assert.deepEqual(scanAll(["--", "-m", "x"]), [[], ["-m", "x"]]);
  assert.deepEqual(scanAll(["-", "x"]), [[], ["-", "x"]]);
  assert.deepEqual(scanAll([]), [[], []]);
  assert.deepEqual(scanAll(["-m", "--", "prog"]), [[["membind", "-m", "--"]], ["prog"]]);
});

Deno.test("getopt: a unique prefix names its long option; an ambiguous one lists the candidates", () => {
  assert.deepEqual(scanAll(["--int=1", "p"])[0], [["interleave", "--int", "1"]]);
  assert.deepEqual(scanAll(["--memb", "1", "p"])[0], [["membind", "--memb", "1"]]);
  assert.throws(
    () => scanAll(["--mem=1", "p"]),
    new TypeError("ambiguous --mem: membind mem-tiers"),
  );
  assert.throws(() => scanAll(["--int=1", "p"], false), new TypeError("unknown --int=1 (--int)"));
});

Deno.test("getopt: errors name the offending token", () => {
  assert.throws(() => scanAll(["--bogus=3"]), new TypeError("unknown --bogus=3 (--bogus)"));
  assert.throws(() => scanAll(["-x7"]), new TypeError("unknown -x7 (-x)"));
  assert.throws(() => scanAll(["--membind"]), new TypeError("--membind (membind) needs a value"));
  assert.throws(() => scanAll(["-m"]), new TypeError("-m (membind) needs a value"));
});

Deno.test("getopt: an option without a value reports what was attached, and takes no argument", () => {
  assert.deepEqual(scanAll(["--help=x", "-hy", "--help", "p"]), [[
    ["help", "--help", "x"],
    ["help", "-h", "y"],
    ["help", "--help", "-"],
  ], ["p"]]);
});
