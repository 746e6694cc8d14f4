import assert from "node:assert/strict";
import {
  hmctlEnv,
  hmctlErrorText,
  hmctlHelp,
  type HmctlPolicy,
  hmctlPolicyString,
  type HmctlRequest,
  hmctlUsage,
  MPOL_MODE,
  parseHmctlArgs,
  policyEnv,
} from "../../cli/hmctl_options.ts";
import type { NodeTopology } from "../../lib/node_list.ts";

const fourNodes: NodeTopology = { online: [0, 1, 2, 3], allowed: [0, 1, 2, 3] };
const manyNodes: NodeTopology = {
  online: Array.from({ length: 128 }, (_, n) => n),
  allowed: Array.from({ length: 128 }, (_, n) => n),
};

function parse(...argv: string[]): HmctlRequest {
  return parseHmctlArgs(argv, fourNodes);
}

function run(
  policy: HmctlPolicy | null,
  program: string,
  ...args: string[]
): HmctlRequest {
  return { kind: "run", policy, program, args };
}

function fails(argv: string[], kind: typeof TypeError | typeof RangeError, message: string): void {
  assert.throws(() => parseHmctlArgs(argv, fourNodes), (e: unknown) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

const bind2: HmctlPolicy = { mode: "bind", nodes: [2] };

Deno.test("-m takes its node list attached or as the next argument", () => {
  assert.deepEqual(parse("-m2", "prog"), run(bind2, "prog"));
  assert.deepEqual(parse("-m", "2", "prog"), run(bind2, "prog"));
});

Deno.test("--membind takes its node list after = or as the next argument", () => {
  assert.deepEqual(parse("--membind=2", "prog"), run(bind2, "prog"));
  assert.deepEqual(parse("--membind", "2", "prog"), run(bind2, "prog"));
});

Deno.test("every policy option sets its mode, short and long", () => {
  const cases: [string, string, string, HmctlPolicy][] = [
    ["-m", "--membind", "0-1", { mode: "bind", nodes: [0, 1] }],
    ["-p", "--preferred", "3", { mode: "preferred", nodes: [3] }],
    ["-P", "--preferred-many", "2,3", { mode: "preferred-many", nodes: [2, 3] }],
    ["-i", "--interleave", "all", { mode: "interleave", nodes: [0, 1, 2, 3] }],
    ["-w", "--weighted-interleave", "0-3", {
      mode: "weighted-interleave",
      nodes: [0, 1, 2, 3],
    }],
  ];
  for (const [short, long, nodes, policy] of cases) {
    assert.deepEqual(parse(short, nodes, "prog"), run(policy, "prog"), short);
    assert.deepEqual(parse(`${short}${nodes}`, "prog"), run(policy, "prog"), short);
    assert.deepEqual(parse(`${long}=${nodes}`, "prog"), run(policy, "prog"), long);
    assert.deepEqual(parse(long, nodes, "prog"), run(policy, "prog"), long);
  }
});

Deno.test("a short option's separate value is taken even when it starts with a dash", () => {
  fails(["-m", "-1", "prog"], TypeError, `invalid node range "-1" (needs START-END)`);
});

Deno.test("long options accept unique prefixes", () => {
  assert.deepEqual(parse("--mem=2", "prog"), run(bind2, "prog"));
  assert.deepEqual(parse("--m", "2", "prog"), run(bind2, "prog"));
  assert.deepEqual(parse("--inter=1", "prog"), run({ mode: "interleave", nodes: [1] }, "prog"));
  assert.deepEqual(
    parse("--w=1", "prog"),
    run({ mode: "weighted-interleave", nodes: [1] }, "prog"),
  );
  assert.deepEqual(
    parse("--preferred-m=1", "prog"),
    run({ mode: "preferred-many", nodes: [1] }, "prog"),
  );
  assert.deepEqual(parse("--h"), { kind: "help" });
  assert.deepEqual(parse("--us"), { kind: "usage" });
});

Deno.test("an exact long name wins over the longer names it prefixes", () => {
  assert.deepEqual(parse("--preferred=1", "prog"), run({ mode: "preferred", nodes: [1] }, "prog"));
});

Deno.test("an ambiguous prefix is an error naming the candidates", () => {
  fails(
    ["--p=1", "prog"],
    TypeError,
    `ambiguous option "--p" (could be --preferred, --preferred-many)`,
  );
  fails(
    ["--pref", "1", "prog"],
    TypeError,
    `ambiguous option "--pref" (could be --preferred, --preferred-many)`,
  );
});

Deno.test("unknown options are errors naming them", () => {
  fails(["--bogus=1", "prog"], TypeError, `unrecognized option "--bogus=1"`);
  fails(["--=1", "prog"], TypeError, `unrecognized option "--=1"`);
  fails(["-x", "prog"], TypeError, `invalid option "-x"`);
  fails(["-M0", "prog"], TypeError, `invalid option "-M"`);
});

Deno.test("an option missing its value is an error", () => {
  fails(["-m"], TypeError, `option "-m" requires a node list`);
  fails(["--interleave"], TypeError, `option "--interleave" requires a node list`);
  fails(["-p"], TypeError, `option "-p" requires a node`);
});

Deno.test("-?, --help and --usage ask for help and usage, whatever follows", () => {
  assert.deepEqual(parse("-?"), { kind: "help" });
  assert.deepEqual(parse("--help", "prog"), { kind: "help" });
  assert.deepEqual(parse("-m", "1", "--help"), { kind: "help" });
  assert.deepEqual(parse("--usage"), { kind: "usage" });
  fails(["--help=x"], TypeError, `option "--help" takes no argument`);
});

Deno.test("two different policies conflict, naming both options as written", () => {
  fails(["-m", "0", "-i", "1", "prog"], TypeError, `conflicting policies "-m" and "-i"`);
  fails(["--mem=0", "-p1", "prog"], TypeError, `conflicting policies "--mem" and "-p"`);
  fails(
    ["-w", "0", "--interleave", "1", "prog"],
    TypeError,
    `conflicting policies "-w" and "--interleave"`,
  );
});

Deno.test("repeating the same policy keeps the last node list", () => {
  assert.deepEqual(parse("-m", "0", "--membind=2", "prog"), run(bind2, "prog"));
});

Deno.test("--preferred takes exactly one node", () => {
  fails(["-p", "0,1", "prog"], TypeError, `option "-p" takes one node, but "0,1" selects 2`);
  assert.deepEqual(parse("-p", "!0-2", "prog"), run({ mode: "preferred", nodes: [3] }, "prog"));
});

Deno.test("node list errors name the bad node", () => {
  fails(["-m", "9", "prog"], RangeError, `invalid node "9" (not online; online nodes: 0-3)`);
  fails(["-i", "0,x", "prog"], TypeError, `invalid node "x" (not a number)`);
  fails(["--membind=", "prog"], TypeError, `invalid node list "" (empty)`);
});

Deno.test("parsing stops at the program; its arguments pass through untouched, -- included", () => {
  assert.deepEqual(
    parse("-m", "2", "prog", "-m", "3", "--", "--help", "x"),
    run(bind2, "prog", "-m", "3", "--", "--help", "x"),
  );
  assert.deepEqual(parse("prog", "--"), run(null, "prog", "--"));
  assert.deepEqual(parse("prog"), run(null, "prog"));
});

Deno.test("-- ends the options: the next argument is the program even if it looks like one", () => {
  assert.deepEqual(parse("-m2", "--", "-prog", "a"), run(bind2, "-prog", "a"));
  assert.deepEqual(parse("--", "--", "a"), run(null, "--", "a"));
});

Deno.test("a lone dash is the program, as for getopt", () => {
  assert.deepEqual(parse("-"), run(null, "-"));
});

Deno.test("no program is an error", () => {
  fails([], TypeError, "missing program");
  fails(["-m", "2"], TypeError, "missing program");
  fails(["-m", "2", "--"], TypeError, "missing program");
});

Deno.test("MPOL numbers are Linux's", () => {
  assert.deepEqual(MPOL_MODE, {
    "preferred": 1,
    "bind": 2,
    "interleave": 3,
    "preferred-many": 5,
    "weighted-interleave": 6,
  });
});

Deno.test("each mode's environment has HMALLOC_POLICY, the decimal nodemask and the MPOL number", () => {
  const env = (policy: HmctlPolicy): Record<string, string> => policyEnv(policy);
  assert.deepEqual(env({ mode: "bind", nodes: [2] }), {
    HMALLOC_POLICY: "bind:2",
    HMALLOC_JEMALLOC: "1",
    HMALLOC_NODEMASK: "4",
    HMALLOC_MPOL_MODE: "2",
  });
  assert.deepEqual(env({ mode: "preferred", nodes: [3] }), {
    HMALLOC_POLICY: "preferred:3",
    HMALLOC_JEMALLOC: "1",
    HMALLOC_NODEMASK: "8",
    HMALLOC_MPOL_MODE: "1",
  });
  assert.deepEqual(env({ mode: "preferred-many", nodes: [2, 3] }), {
    HMALLOC_POLICY: "preferred-many:2,3",
    HMALLOC_JEMALLOC: "1",
    HMALLOC_NODEMASK: "12",
    HMALLOC_MPOL_MODE: "5",
  });
  assert.deepEqual(env({ mode: "interleave", nodes: [0, 1, 2, 3] }), {
    HMALLOC_POLICY: "interleave:0,1,2,3",
    HMALLOC_JEMALLOC: "1",
    HMALLOC_NODEMASK: "15",
    HMALLOC_MPOL_MODE: "3",
  });
  assert.deepEqual(env({ mode: "weighted-interleave", nodes: [0, 1, 2, 3] }), {
    HMALLOC_POLICY: "weighted-interleave:0,1,2,3",
    HMALLOC_JEMALLOC: "1",
    HMALLOC_NODEMASK: "15",
    HMALLOC_MPOL_MODE: "6",
  });
});

Deno.test("the nodemask is exact up to node 63 (beyond a double's precision)", () => {
  const policy = parseHmctlArgs(["-i", "0,53,63", "prog"], manyNodes);
  assert.ok(policy.kind === "run" && policy.policy !== null);
  assert.equal(
    policyEnv(policy.policy).HMALLOC_NODEMASK,
    ((1n << 63n) | (1n << 53n) | 1n).toString(),
  );
  assert.equal(policyEnv({ mode: "bind", nodes: [63] }).HMALLOC_NODEMASK, "9223372036854775808");
});

Deno.test("a node from 64 up sets only HMALLOC_POLICY: the reference's mask cannot hold it", () => {
  assert.deepEqual(policyEnv({ mode: "interleave", nodes: [0, 64] }), {
    HMALLOC_POLICY: "interleave:0,64",
  });
});

Deno.test("hmctlPolicyString writes the resolved plain list", () => {
  assert.equal(hmctlPolicyString({ mode: "bind", nodes: [0, 1, 2] }), "bind:0,1,2");
});

Deno.test("the child's environment keeps the rest and replaces stale hmctl variables", () => {
  const base = { PATH: "/bin", HOME: "/root", HMALLOC_NODEMASK: "1", HMALLOC_MPOL_MODE: "2" };
  assert.deepEqual(hmctlEnv(base, { mode: "interleave", nodes: [0, 64] }), {
    PATH: "/bin",
    HOME: "/root",
    HMALLOC_POLICY: "interleave:0,64",
  });
  assert.deepEqual(hmctlEnv(base, bind2), {
    PATH: "/bin",
    HOME: "/root",
    HMALLOC_POLICY: "bind:2",
    HMALLOC_JEMALLOC: "1",
    HMALLOC_NODEMASK: "4",
    HMALLOC_MPOL_MODE: "2",
  });
  assert.deepEqual(hmctlEnv(base, null), base);
});

Deno.test("help lists every option; usage is a synopsis; errors add the help hint", () => {
  const help = hmctlHelp("cli.ts");
  for (
    const option of [
      "-m, --membind=NODES",
      "-p, --preferred=NODE",
      "-P, --preferred-many=NODES",
      "-i, --interleave=NODES",
      "-w, --weighted-interleave=NODES",
      "-?, --help",
      "--usage",
    ]
  ) {
    assert.ok(help.includes(option), option);
  }
  assert.ok(hmctlUsage("cli.ts").startsWith("Usage: cli.ts [-?] [-m NODES]"));
  assert.ok(hmctlUsage("cli.ts").includes("PROGRAM [ARGS...]"));
  assert.equal(
    hmctlErrorText(`invalid node "9"`),
    `hmctl: invalid node "9"\n`,
  );
});
