/**
 * The Debian (or Ubuntu) packages a command needs, installed when missing: the list is
 * `scripts/debian-packages.txt` (one package a line, with the profile that needs it and why),
 * shared with the bash bootstrap. As root, `apt-get install` what is missing (after one
 * `apt-get update`); otherwise print the single line to run with sudo and fail. The `vm` profile
 * also needs a Linux >= 6.9 kernel image with its modules for the 4-node test VM (weighted
 * interleave appeared in 6.9): on Debian 12 it comes from bookworm-backports, whose source entry
 * is added when missing; on Ubuntu 24.04 from the HWE kernel.
 *
 * `deno run -A scripts/support/debian.ts [PROFILE…]` installs the given profiles (default all).
 *
 * @module
 */
import $ from "dax";
import { join } from "node:path";
import { logStep, repoRoot } from "./toolchain.ts";

/** A group of packages, named for what needs them. */
export type Profile = "bootstrap" | "build" | "demo" | "test" | "vm";

/** Every profile, in install order. */
export const allProfiles: readonly Profile[] = ["bootstrap", "build", "demo", "test", "vm"];

/** The oldest kernel the VM suite boots (MPOL_WEIGHTED_INTERLEAVE). */
export const vmKernelMin = "6.9";

const listPath = join(repoRoot, "scripts", "debian-packages.txt");
const backportsSource = "/etc/apt/sources.list.d/backports.sources";

/**
 * The packages of `profiles`, in file order.
 *
 * @example
 * ```ts ignore
 * console.log(packagesOf(["bootstrap"]).map((p) => p.name)); // ["npm", "ca-certificates"]
 * ```
 */
export function packagesOf(profiles: readonly Profile[]): DebianPackage[] {
  const packages: DebianPackage[] = [];
  for (const line of Deno.readTextFileSync(listPath).split("\n")) {
    const [profile, name, third] = line.replace(/--.*/, "").trim().split(/\s+/);
    if (line.startsWith("#") || name === undefined) continue;
    if (!(allProfiles as readonly string[]).includes(profile)) {
      throw new Error(`${listPath}: unknown profile ${JSON.stringify(profile)}`);
    }
    const command = third?.startsWith("cmd=") ? third.slice(4) : undefined;
    if (profiles.includes(profile as Profile) && !packages.some((p) => p.name === name)) {
      packages.push({ name, command });
    }
  }
  return packages;
}

/** A line of the package list. */
export interface DebianPackage {
  /** The package name. */
  name: string;
  /** When set, the package counts as present if this command is on PATH. */
  command?: string;
}

async function installed(pkg: DebianPackage): Promise<boolean> {
  if (pkg.command !== undefined && await $.commandExists(pkg.command)) return true;
  const out = await $`dpkg-query -W -f ${"${Status}"} ${pkg.name}`.quiet().noThrow();
  return out.code === 0 && out.stdout.includes("install ok installed");
}

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < b.length; i++) {
    if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i];
  }
  return true;
}

/**
 * Whether a kernel the VM can boot is installed: `/boot/vmlinuz-K` and `/lib/modules/K` with
 * `modules.dep`, K >= {@link vmKernelMin}.
 *
 * @example
 * ```ts ignore
 * console.log(hasVmKernel());
 * ```
 */
export function hasVmKernel(): boolean {
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync("/lib/modules")].map((e) => e.name);
  } catch {
    return false;
  }
  return names.some((k) => {
    const version = k.split(/[-+]/)[0];
    try {
      Deno.statSync(`/boot/vmlinuz-${k}`);
      Deno.statSync(`/lib/modules/${k}/modules.dep`);
    } catch {
      return false;
    }
    return versionAtLeast(version, vmKernelMin);
  });
}

function osRelease(): Map<string, string> {
  const fields = new Map<string, string>();
  try {
    for (const line of Deno.readTextFileSync("/etc/os-release").split("\n")) {
      const m = line.match(/^(\w+)=("?)(.*)\2$/);
      if (m) fields.set(m[1], m[3]);
    }
  } catch { /* no os-release: treated as unknown */ }
  return fields;
}

/**
 * Installs what `profiles` need and is missing (nothing at all when everything is there).
 * Throws with the one command to run when not root, or when there is no apt-get.
 *
 * @example
 * ```ts ignore
 * await ensurePackages(["bootstrap", "build"]);
 * ```
 */
export async function ensurePackages(profiles: readonly Profile[]): Promise<void> {
  const wanted = packagesOf(profiles);
  const missing: string[] = [];
  for (const pkg of wanted) if (!await installed(pkg)) missing.push(pkg.name);
  const kernel = profiles.includes("vm") && Deno.env.get("TIERMEM_NO_KERNEL") !== "1" &&
    !hasVmKernel();
  if (missing.length === 0 && !kernel) return;
  if (!await $.commandExists("apt-get")) {
    throw new Error(
      `no apt-get here: install the equivalents of ${missing.join(" ")}` +
        (kernel ? ` and a Linux >= ${vmKernelMin} kernel image` : ""),
    );
  }
  if (Deno.uid() !== 0) {
    const what = kernel
      ? `sudo bash scripts/install-deps.sh ${profiles.join(" ")}`
      : `sudo apt-get install -y ${missing.join(" ")}`;
    throw new Error(`missing Debian packages; as root, run:\n  ${what}`);
  }
  const os = osRelease();
  const apt = ["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"];
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const debian = os.get("ID") === "debian" && os.get("VERSION_CODENAME") === "bookworm";
  if (kernel && debian && !await hasBackportsSource()) {
    logStep(`adding the bookworm-backports source (${backportsSource})`);
    await Deno.writeTextFile(
      backportsSource,
      "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n" +
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    );
  }
  logStep("apt-get update");
  await $`${apt} update`.env(env).quiet("stdout");
  if (missing.length > 0) {
    logStep(`installing ${missing.join(" ")}`);
    await $`${apt} install --no-install-recommends ${missing}`.env(env).quiet("stdout");
  }
  if (kernel) {
    const [name, extra] = debian
      ? ["linux-image-amd64", ["-t", "bookworm-backports"]]
      : ["linux-image-generic-hwe-24.04", []];
    logStep(`installing a Linux >= ${vmKernelMin} kernel for the test VM (${name})`);
    await $`${apt} install --no-install-recommends ${extra} ${name}`.env(env).quiet("stdout");
    if (!hasVmKernel()) {
      throw new Error(`no Linux >= ${vmKernelMin} image after installing ${name}`);
    }
  }
}

async function hasBackportsSource(): Promise<boolean> {
  const out = await $`grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/`
    .noThrow();
  return out.code === 0;
}

if (import.meta.main) {
  const profiles = Deno.args.length > 0 ? Deno.args : [...allProfiles];
  for (const p of profiles) {
    if (!(allProfiles as readonly string[]).includes(p)) {
      console.error(
        `install-deps: unknown profile ${JSON.stringify(p)} (${allProfiles.join(", ")})`,
      );
      Deno.exit(2);
    }
  }
  try {
    await ensurePackages(profiles as Profile[]);
  } catch (error) {
    console.error(`install-deps: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
