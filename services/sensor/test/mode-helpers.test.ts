// The helpers the loader probes before loading each attach mode are exactly
// the helpers that mode's programs call in the compiled object
// (bpf/.output/netmon.bpf.o). The per-mode sets are derived here from the
// object's instructions and the loader's own WantedIn rule, so this stays true
// as programs are added. No privileges needed: the object is opened, not loaded.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ModeCode } from '../src/probe/layout';
import { loadAddon } from '../src/probe/native';

const OBJECT = path.resolve(__dirname, '..', '..', '..', '..', 'bpf', '.output', 'netmon.bpf.o');
const MODES = ['fentry', 'kprobe', 'tracepoint'] as const;

interface AddonProgram {
  name: string;
  section: string;
  progType: string;
  attachType: string;
  target: string;
  optional: boolean;
  helpers: number[];
}
interface AddonProbe extends Omit<AddonProgram, 'helpers'> {
  program: string;
  helper: number;
  helperName: string;
}
interface Requirements {
  programs: AddonProgram[];
  modes: Record<(typeof MODES)[number], { programs: string[]; probes: AddonProbe[] }>;
}
interface ModeAddon {
  modeRequirements(): Requirements;
  wantedIn(mode: number, section: string): boolean;
}

interface ElfProgram {
  name: string;
  section: string;
  /** helper ids called directly in the program's own instructions */
  direct: number[];
  /** ... and in the subprograms it calls */
  helpers: number[];
}

/**
 * Programs of a BPF ELF object (FUNC symbols in executable sections other
 * than .text) and the helpers each calls: BPF_JMP|BPF_CALL (0x85) with
 * src_reg 0 is a helper call (imm = helper id); src_reg 1 (BPF_PSEUDO_CALL)
 * calls a subprogram, whose helpers count too.
 */
function elfPrograms(file: string): ElfProgram[] {
  const b = fs.readFileSync(file);
  assert.equal(b.toString('latin1', 1, 4), 'ELF', `${file} is not an ELF file`);
  assert.equal(b[4], 2, 'ELFCLASS64');
  assert.equal(b[5], 1, 'little-endian');
  assert.equal(b.readUInt16LE(18), 247, 'e_machine EM_BPF');
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const sh = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return {
      name: b.readUInt32LE(o),
      type: b.readUInt32LE(o + 4),
      flags: Number(b.readBigUInt64LE(o + 8)),
      offset: Number(b.readBigUInt64LE(o + 24)),
      size: Number(b.readBigUInt64LE(o + 32)),
      link: b.readUInt32LE(o + 40),
      info: b.readUInt32LE(o + 44),
    };
  });
  const str = (sec: number, off: number) => {
    const start = sh[sec].offset + off;
    return b.toString('latin1', start, b.indexOf(0, start));
  };
  const secName = (i: number) => str(shstrndx, sh[i].name);
  const SHT_PROGBITS = 1;
  const SHT_SYMTAB = 2;
  const SHT_REL = 9;
  const SHF_EXECINSTR = 4;
  const symtab = sh.findIndex((s) => s.type === SHT_SYMTAB);
  assert.ok(symtab >= 0, 'symbol table');
  const syms = Array.from({ length: sh[symtab].size / 24 }, (_, i) => {
    const o = sh[symtab].offset + i * 24;
    return {
      name: str(sh[symtab].link, b.readUInt32LE(o)),
      type: b[o + 4] & 0xf,
      shndx: b.readUInt16LE(o + 6),
      value: Number(b.readBigUInt64LE(o + 8)),
      size: Number(b.readBigUInt64LE(o + 16)),
    };
  });
  const STT_FUNC = 2;
  const isCode = (i: number) => i > 0 && i < shnum && sh[i].type === SHT_PROGBITS && (sh[i].flags & SHF_EXECINSTR) !== 0;
  const funcs = syms.filter((s) => s.type === STT_FUNC && isCode(s.shndx));
  // relocations of each code section, by instruction offset
  const rels = new Map<number, Map<number, number>>();
  sh.forEach((s) => {
    if (s.type !== SHT_REL) return;
    const m = new Map<number, number>();
    for (let o = s.offset; o < s.offset + s.size; o += 16) m.set(Number(b.readBigUInt64LE(o)), Number(b.readBigUInt64LE(o + 8) >> 32n));
    rels.set(s.info, m);
  });

  const walk = (sec: number, start: number, end: number, out: { direct: Set<number>; all: Set<number> }, seen: Set<string>, top: boolean): void => {
    if (seen.has(`${sec}:${start}`)) return;
    seen.add(`${sec}:${start}`);
    const base = sh[sec].offset;
    for (let off = start; off + 8 <= Math.min(end, sh[sec].size); off += 8) {
      const code = b[base + off];
      if (code === 0x18) {
        off += 8; // ld_imm64: two slots
        continue;
      }
      if (code !== 0x85) continue;
      const src = b[base + off + 1] >> 4;
      const imm = b.readInt32LE(base + off + 4);
      if (src === 0) {
        out.all.add(imm);
        if (top) out.direct.add(imm);
      } else if (src === 1) {
        let tsec = sec;
        let target = off / 8 + imm + 1;
        const r = rels.get(sec)?.get(off);
        if (r !== undefined) {
          tsec = syms[r].shndx;
          target = syms[r].value / 8 + imm + 1;
        }
        const f = funcs.find((fn) => fn.shndx === tsec && target * 8 >= fn.value && target * 8 < fn.value + fn.size);
        walk(tsec, f ? f.value : target * 8, f ? f.value + f.size : sh[tsec].size, out, seen, false);
      }
    }
  };

  return funcs
    .filter((f) => secName(f.shndx) !== '.text')
    .map((f) => {
      const out = { direct: new Set<number>(), all: new Set<number>() };
      walk(f.shndx, f.value, f.value + f.size, out, new Set(), true);
      const sorted = (s: Set<number>) => [...s].sort((x, y) => x - y);
      return { name: f.name, section: secName(f.shndx), direct: sorted(out.direct), helpers: sorted(out.all) };
    });
}

const sorted = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);
const addon = loadAddon() as unknown as ModeAddon;
const req = addon.modeRequirements();
const elf = elfPrograms(OBJECT);

test('the addon embeds the same object as bpf/.output/netmon.bpf.o', () => {
  const key = (p: { section: string; name: string }) => `${p.section} ${p.name}`;
  assert.deepEqual(req.programs.map(key).sort(), elf.map(key).sort(), 'programs differ: rebuild the addon (npm run build:native --workspace @netmon/sensor)');
  for (const p of elf) {
    const a = req.programs.find((x) => x.name === p.name)!;
    assert.deepEqual(a.helpers, p.helpers, `${p.section}: helpers the loader reads from its object`);
  }
});

test('helper calls made through subprograms count for the program (fixture object)', (t) => {
  const src = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'subprog.bpf.c');
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'netmon-subprog-')), 'subprog.bpf.o');
  const cc = spawnSync('clang', ['-O2', '-target', 'bpf', '-c', src, '-o', out], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    t.skip(`clang cannot build the BPF fixture: ${cc.error?.message ?? cc.stderr}`);
    return;
  }
  const got = Object.fromEntries(elfPrograms(out).map((p) => [p.name, { section: p.section, direct: p.direct, helpers: p.helpers }]));
  assert.deepEqual(got, {
    prog_a: { section: 'raw_tp/a', direct: [14], helpers: [7, 14, 125] }, // mid (.text, static) -> leaf
    prog_b: { section: 'raw_tp/b', direct: [], helpers: [8] }, // global_fn (.text, global)
    prog_c: { section: 'raw_tp/c', direct: [5], helpers: [5] },
  });
});

test('llvm-objdump agrees on the helper calls of each program section', (t) => {
  const r = spawnSync('llvm-objdump', ['-d', OBJECT], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    t.skip(`llvm-objdump not usable: ${r.error?.message ?? r.stderr}`);
    return;
  }
  // "Disassembly of section S:" then lines "  N:  85 0s ii ii ii ii ii ii  call K"
  const bySection = new Map<string, Set<number>>();
  let current: Set<number> | undefined;
  for (const line of r.stdout.split('\n')) {
    const sec = /^Disassembly of section (.+):$/.exec(line);
    if (sec) {
      current = new Set();
      bySection.set(sec[1], current);
      continue;
    }
    const insn = /^\s*\d+:\s+85 ([0-9a-f])[0-9a-f] (?:[0-9a-f]{2} ){2}((?:[0-9a-f]{2} ?){4})/.exec(line);
    if (!insn || !current) continue;
    if (insn[1] !== '0') continue; // src_reg != 0: subprogram or kfunc call
    current.add(Buffer.from(insn[2].replace(/ /g, ''), 'hex').readInt32LE(0));
  }
  for (const [sec, helpers] of bySection) {
    if (sec === '.text') continue;
    const direct = sorted(elf.filter((p) => p.section === sec).flatMap((p) => p.direct));
    assert.deepEqual(sorted(helpers), direct, `${sec}: llvm-objdump vs the ELF walk`);
  }
  assert.ok(bySection.size > 0, 'llvm-objdump disassembled something');
});

test('the attach modes load the programs the loader is meant to (WantedIn)', () => {
  const sections = new Set(elf.map((p) => p.section));
  const wanted = (mode: (typeof MODES)[number], sec: string) => addon.wantedIn(ModeCode[mode], sec);
  for (const sec of sections) {
    if (sec.startsWith('fentry/') || sec.startsWith('fexit/'))
      assert.deepEqual(
        MODES.filter((m) => wanted(m, sec)),
        ['fentry'],
        sec,
      );
    if (sec.startsWith('kprobe/') || sec.startsWith('kretprobe/'))
      assert.deepEqual(
        MODES.filter((m) => wanted(m, sec)),
        ['kprobe'],
        sec,
      );
  }
  // every mode: sockops (per-socket state closes need), exec, fork, exit
  for (const sec of ['sockops', 'raw_tp/sched_process_exec', 'raw_tp/sched_process_fork', 'raw_tp/sched_process_exit'])
    if (sections.has(sec))
      assert.deepEqual(
        MODES.filter((m) => wanted(m, sec)),
        [...MODES],
        sec,
      );
  // tracepoint mode only: its Accept and Close paths
  for (const sec of ['raw_tp/sys_exit', 'raw_tp/io_uring_complete', 'cgroup/sock_release'])
    if (sections.has(sec))
      assert.deepEqual(
        MODES.filter((m) => wanted(m, sec)),
        ['tracepoint'],
        sec,
      );
  assert.equal(addon.wantedIn(ModeCode.auto, 'sockops'), false, 'auto is not a mode programs load in');
  for (const m of MODES)
    assert.deepEqual(
      req.modes[m].programs.sort(),
      elf
        .filter((p) => wanted(m, p.section))
        .map((p) => p.name)
        .sort(),
      `${m}: programs`,
    );
});

test('each mode probes exactly the helpers its programs call in the object', (t) => {
  for (const mode of MODES) {
    const programs = elf.filter((p) => addon.wantedIn(ModeCode[mode], p.section));
    assert.ok(programs.length > 0, `${mode} loads programs`);
    // per program: the helpers probed in that program's type (and attach type/target)
    const probed = new Map<string, number[]>();
    for (const p of req.modes[mode].probes) probed.set(p.program, [...(probed.get(p.program) ?? []), p.helper]);
    for (const p of programs) {
      assert.deepEqual(sorted(probed.get(p.name) ?? []), p.helpers, `${mode}: ${p.section} (${p.name})`);
      const info = req.programs.find((x) => x.name === p.name)!;
      for (const pr of req.modes[mode].probes.filter((x) => x.program === p.name)) {
        assert.equal(pr.progType, info.progType, `${p.section}: probed in its own program type`);
        assert.equal(pr.attachType, info.attachType, `${p.section}: probed with its expected attach type`);
        assert.equal(pr.target, info.target, `${p.section}: probed on its own target`);
      }
    }
    assert.deepEqual(
      [...probed.keys()].sort(),
      programs
        .filter((p) => p.helpers.length > 0)
        .map((p) => p.name)
        .sort(),
      `${mode}: nothing probed for programs it does not load`,
    );
    const union = sorted(programs.flatMap((p) => p.helpers));
    assert.deepEqual(sorted(req.modes[mode].probes.map((p) => p.helper)), union, `${mode}: helper set`);
    const names = new Map(req.modes[mode].probes.map((p) => [p.helper, p.helperName]));
    t.diagnostic(`${mode}: ${union.map((h) => `${names.get(h)}#${h}`).join(' ')}`);
  }
});
