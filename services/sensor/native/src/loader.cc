// SPDX-License-Identifier: Apache-2.0
// Netmon loader: see loader.h. Every function here runs on the JS thread
// unless its comment says otherwise.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <mntent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include "netmon.h"
#include "netmon.skel.h"

namespace netmon {

namespace {

const char kVmlinuxBtf[] = "/sys/kernel/btf/vmlinux";

// libbpf's messages (including the verifier log of a rejected program) are
// kept, not printed: the last lines go into the error of a failed load.
std::mutex g_log_mu;
std::deque<std::string> g_log;
constexpr size_t kLogLines = 400;

int CaptureLibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::lock_guard<std::mutex> lock(g_log_mu);
  std::string s(buf);
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty()) g_log.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  while (g_log.size() > kLogLines) g_log.pop_front();
  return 0;
}

void ClearLog() {
  std::lock_guard<std::mutex> lock(g_log_mu);
  g_log.clear();
}

// The verifier's last lines (the ones saying why), or the last libbpf lines.
std::string LogTail(size_t lines) {
  std::lock_guard<std::mutex> lock(g_log_mu);
  size_t end = g_log.size();
  for (size_t i = 0; i < g_log.size(); i++)
    if (g_log[i].find("-- END PROG LOAD LOG --") != std::string::npos) {
      end = i;
      break;
    }
  size_t begin = end > lines ? end - lines : 0;
  std::string out;
  for (size_t i = begin; i < end; i++) {
    out += g_log[i];
    out += '\n';
  }
  return out;
}

bool LogHasVerifierOutput() {
  std::lock_guard<std::mutex> lock(g_log_mu);
  for (const auto &l : g_log)
    if (l.find("BEGIN PROG LOAD LOG") != std::string::npos) return true;
  return false;
}

void InstallPrint() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(CaptureLibbpfPrint); });
}

// One line: newlines and tabs become spaces, trailing blanks dropped.
std::string OneLine(std::string s) {
  for (char &c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

bool Fail(Failure &f, const char *code, const char *step, const std::string &msg, int err,
          std::string detail = "") {
  f.code = code;
  f.step = step;
  f.err = err;
  f.message = OneLine(err ? msg + ": " + strerror(err) : msg);
  f.detail = std::move(detail);
  return false;
}

bool StartsWith(const std::string &s, const char *prefix) {
  return s.compare(0, strlen(prefix), prefix) == 0;
}

// ---- the object: programs and the helpers they call --------------------

// Helper calls of every program of a BPF ELF object: BPF_JMP|BPF_CALL
// (0x85) with src_reg 0 calls helper `imm`; src_reg BPF_PSEUDO_CALL (1) calls
// a subprogram (same section, or .text through a relocation), whose calls
// count for the caller too.
class ElfHelpers {
 public:
  ElfHelpers(const void *data, size_t size) : d_(static_cast<const uint8_t *>(data)), n_(size) {}

  bool Parse(std::map<std::string, std::pair<std::string, std::vector<int>>> &by_name,
             std::string &err) {
    const auto *eh = At<Elf64_Ehdr>(0);
    if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
        eh->e_machine != EM_BPF || eh->e_shentsize != sizeof(Elf64_Shdr))
      return Error(err, "not a little-endian 64-bit BPF ELF object");
    sh_ = At<Elf64_Shdr>(eh->e_shoff, eh->e_shnum);
    nsh_ = eh->e_shnum;
    if (!sh_ || eh->e_shstrndx >= nsh_) return Error(err, "bad section headers");
    shstr_ = eh->e_shstrndx;
    for (size_t i = 0; i < nsh_; i++) {
      if (sh_[i].sh_type == SHT_SYMTAB) {
        syms_ = At<Elf64_Sym>(sh_[i].sh_offset, sh_[i].sh_size / sizeof(Elf64_Sym));
        nsyms_ = sh_[i].sh_size / sizeof(Elf64_Sym);
        strtab_ = sh_[i].sh_link;
      } else if (sh_[i].sh_type == SHT_REL && sh_[i].sh_info < nsh_) {
        rel_[sh_[i].sh_info] = i;
      }
    }
    if (!syms_ || strtab_ >= nsh_) return Error(err, "no symbol table");
    for (size_t i = 0; i < nsyms_; i++) {
      const Elf64_Sym &s = syms_[i];
      if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_shndx == SHN_UNDEF || s.st_shndx >= nsh_)
        continue;
      const Elf64_Shdr &sec = sh_[s.st_shndx];
      if (!(sec.sh_flags & SHF_EXECINSTR) || sec.sh_type != SHT_PROGBITS) continue;
      funcs_[s.st_shndx].push_back({s.st_value, s.st_size});
      std::string secname = Str(shstr_, sec.sh_name);
      if (secname == ".text") continue;  // subprograms, not programs
      std::set<int> helpers;
      std::set<std::pair<size_t, uint64_t>> seen;
      if (!Walk(s.st_shndx, s.st_value, s.st_value + s.st_size, helpers, seen, err)) return false;
      by_name[Str(strtab_, s.st_name)] = {secname,
                                          std::vector<int>(helpers.begin(), helpers.end())};
    }
    return true;
  }

 private:
  template <class T>
  const T *At(uint64_t off, uint64_t count = 1) const {
    if (off > n_ || count > (n_ - off) / sizeof(T)) return nullptr;
    return reinterpret_cast<const T *>(d_ + off);
  }
  std::string Str(size_t sec, uint32_t off) const {
    if (sec >= nsh_ || off >= sh_[sec].sh_size) return "";
    const char *p = reinterpret_cast<const char *>(d_ + sh_[sec].sh_offset + off);
    return std::string(p, strnlen(p, sh_[sec].sh_size - off));
  }
  static bool Error(std::string &err, const char *what) {
    err = std::string("parsing the BPF object: ") + what;
    return false;
  }
  // The function of section `sec` containing byte offset `off`.
  bool FuncAt(size_t sec, uint64_t off, uint64_t &start, uint64_t &end) const {
    auto it = funcs_.find(sec);
    if (it == funcs_.end()) return false;
    for (const auto &f : it->second)
      if (off >= f.first && off < f.first + f.second) {
        start = f.first;
        end = f.first + f.second;
        return true;
      }
    return false;
  }
  bool Walk(size_t sec, uint64_t start, uint64_t end, std::set<int> &helpers,
            std::set<std::pair<size_t, uint64_t>> &seen, std::string &err) {
    if (!seen.insert({sec, start}).second) return true;
    const Elf64_Shdr &sh = sh_[sec];
    end = std::min<uint64_t>(end, sh.sh_size);
    const uint8_t *code = reinterpret_cast<const uint8_t *>(At<uint8_t>(sh.sh_offset, sh.sh_size));
    if (!code) return Error(err, "section out of bounds");
    for (uint64_t off = start; off + 8 <= end; off += 8) {
      const uint8_t *insn = code + off;
      if (insn[0] == (BPF_LD | BPF_IMM | BPF_DW)) {  // 16-byte instruction
        off += 8;
        continue;
      }
      if (insn[0] != (BPF_JMP | BPF_CALL)) continue;
      int src = insn[1] >> 4;
      int32_t imm;
      memcpy(&imm, insn + 4, sizeof(imm));
      if (src == 0) {
        helpers.insert(imm);
      } else if (src == BPF_PSEUDO_CALL) {
        size_t tsec = sec;
        int64_t target = static_cast<int64_t>(off / 8) + imm + 1;
        auto r = rel_.find(sec);
        if (r != rel_.end()) {
          const Elf64_Shdr &rs = sh_[r->second];
          const auto *rels = At<Elf64_Rel>(rs.sh_offset, rs.sh_size / sizeof(Elf64_Rel));
          for (size_t i = 0; rels && i < rs.sh_size / sizeof(Elf64_Rel); i++) {
            if (rels[i].r_offset != off) continue;
            size_t si = ELF64_R_SYM(rels[i].r_info);
            if (si >= nsyms_) return Error(err, "bad relocation");
            tsec = syms_[si].st_shndx;
            target = static_cast<int64_t>(syms_[si].st_value / 8) + imm + 1;
            break;
          }
        }
        if (tsec >= nsh_ || target < 0) return Error(err, "bad subprogram call");
        uint64_t toff = static_cast<uint64_t>(target) * 8, fstart, fend;
        if (!FuncAt(tsec, toff, fstart, fend)) {
          fstart = toff;
          fend = sh_[tsec].sh_size;
        }
        if (!Walk(tsec, fstart, fend, helpers, seen, err)) return false;
      }
      // src_reg 2 (BPF_PSEUDO_KFUNC_CALL): a kfunc, not a helper
    }
    return true;
  }

  const uint8_t *d_;
  size_t n_;
  const Elf64_Shdr *sh_ = nullptr;
  size_t nsh_ = 0, shstr_ = 0, strtab_ = SIZE_MAX, nsyms_ = 0;
  const Elf64_Sym *syms_ = nullptr;
  std::map<size_t, size_t> rel_;  // section -> its SHT_REL section
  std::map<size_t, std::vector<std::pair<uint64_t, uint64_t>>> funcs_;  // section -> (value, size)
};

// "fexit/inet_csk_accept" -> "inet_csk_accept"; cgroup hooks have no target.
std::string TargetOf(const std::string &sec, int prog_type) {
  if (prog_type == BPF_PROG_TYPE_SOCK_OPS || prog_type == BPF_PROG_TYPE_CGROUP_SOCK ||
      prog_type == BPF_PROG_TYPE_CGROUP_SOCK_ADDR || prog_type == BPF_PROG_TYPE_CGROUP_SKB)
    return "";
  size_t slash = sec.find('/');
  return slash == std::string::npos ? "" : sec.substr(slash + 1);
}

bool IsTracingOnlyProg(const char *sec) {
  return strncmp(sec, "fentry/", 7) == 0 || strncmp(sec, "fexit/", 6) == 0;
}
bool IsKprobeProg(const char *sec) {
  return strncmp(sec, "kprobe/", 7) == 0 || strncmp(sec, "kretprobe/", 10) == 0;
}
bool IsRawTpProg(const char *sec) {
  return strncmp(sec, "raw_tp/", 7) == 0 || strncmp(sec, "raw_tracepoint/", 15) == 0;
}

// A mode's own programs: wanted in it and not in every mode.
bool OwnedBy(Mode mode, const char *sec) {
  if (!WantedIn(mode, sec)) return false;
  for (Mode m : kAutoOrder)
    if (!WantedIn(m, sec)) return true;
  return false;
}

const char *ProgTypeName(int t) {
  const char *s = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(t));
  return s ? s : "?";
}

// What skipping an optional program costs, for the reason.
std::string SkipCost(const std::string &sec) {
  if (sec == "raw_tp/io_uring_complete") return "; io_uring accepts are not reported";
  if (sec == "cgroup_skb/ingress") return "; DNS answers are not seen (remote_name stays empty)";
  return "";
}

// Why an optional program's hook may be missing.
std::string MissingHint(const std::string &sec) {
  if (sec == "raw_tp/io_uring_complete") return ", as in kernels built without CONFIG_IO_URING";
  return "";
}

const char *LacksLabel(Mode m) {
  switch (m) {
    case Mode::Fentry: return "kernel lacks fentry: ";
    case Mode::Kprobe: return "kernel lacks kprobes: ";
    default: return "kernel lacks tracepoint mode: ";
  }
}

// ---- test hooks ---------------------------------------------------------

struct TestHooks {
  std::map<Mode, std::string> break_mode;  // mode -> "load" | "attach"
  std::set<std::string> missing_hook;      // sections
  std::set<std::string> break_load;        // sections

  static std::vector<std::string> Split(const char *v) {
    std::vector<std::string> out;
    if (!v) return out;
    std::string s(v);
    size_t start = 0;
    while (start <= s.size()) {
      size_t c = s.find(',', start);
      std::string item = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
      item.erase(0, item.find_first_not_of(' '));
      while (!item.empty() && item.back() == ' ') item.pop_back();
      if (!item.empty()) out.push_back(item);
      if (c == std::string::npos) break;
      start = c + 1;
    }
    return out;
  }

  static TestHooks Read() {
    TestHooks h;
    for (const auto &item : Split(getenv("NETMON_TEST_BREAK_MODE"))) {
      std::string name = item.substr(0, item.find(':'));
      std::string step = item.find(':') == std::string::npos ? "" : item.substr(item.find(':') + 1);
      for (Mode m : kAutoOrder)
        if (name == ModeName(m))
          h.break_mode[m] = step.empty() ? (m == Mode::Fentry ? "load" : "attach") : step;
    }
    for (const auto &item : Split(getenv("NETMON_TEST_MISSING_HOOK"))) h.missing_hook.insert(item);
    for (const auto &item : Split(getenv("NETMON_TEST_BREAK_LOAD"))) h.break_load.insert(item);
    return h;
  }

  bool Breaks(Mode m, const char *step) const {
    auto it = break_mode.find(m);
    return it != break_mode.end() && it->second == step;
  }
  static std::string BrokenTarget(Mode m) {
    return std::string("netmon_test_broken_") + ModeName(m);
  }
  // The hook a program attaches to: its own, or a nonexistent one under test.
  std::string HookOf(const ProgramNeeds &p) const {
    return missing_hook.count(p.section) ? "netmon_test_missing_" + p.target : p.target;
  }
};

// ---- probes -------------------------------------------------------------

int KernelVersionCode() {
  struct utsname u;
  int a = 0, b = 0, c = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d.%d", &a, &b, &c) < 2) return 0;
  return (a << 16) + (b << 8) + std::min(c, 255);
}

// Feature probes for one Load(): each answer cached.
class Prober {
 public:
  ~Prober() {
    if (btf_) btf__free(btf_);
  }

  // Kernel BTF id of the function a tracing program attaches to.
  bool TracingTarget(const ProgramNeeds &p, const std::string &target, int &id, std::string &why) {
    if (!Btf(why)) return false;
    id = btf__find_by_name_kind(btf_, target.c_str(), BTF_KIND_FUNC);
    if (id < 0) {
      why = p.section + ": " + target + " is not a function in the kernel's BTF";
      return false;
    }
    return true;
  }

  // The program type loads at all (libbpf_probe_bpf_prog_type), and a
  // two-instruction program of it with this program's expected attach type
  // and target loads; the first tracing program is also attached (BPF
  // trampolines).
  bool ProgType(const ProgramNeeds &p, int btf_id, std::string &why) {
    auto key = std::make_tuple(p.prog_type, p.attach_type, btf_id);
    auto it = type_ok_.find(key);
    if (it != type_ok_.end()) {
      why = it->second;
      return why.empty();
    }
    std::string &res = type_ok_[key];
    int r = libbpf_probe_bpf_prog_type(static_cast<enum bpf_prog_type>(p.prog_type), nullptr);
    struct bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
    };
    LIBBPF_OPTS(bpf_prog_load_opts, opts,
                .expected_attach_type = static_cast<enum bpf_attach_type>(p.attach_type),
                .kern_version = static_cast<__u32>(KernelVersionCode()),
                .attach_btf_id = static_cast<__u32>(btf_id));
    int fd = bpf_prog_load(static_cast<enum bpf_prog_type>(p.prog_type), "netmon_probe", "GPL",
                           insns, 2, &opts);
    int e = errno;
    std::string test = p.prog_type == BPF_PROG_TYPE_TRACING
                           ? "a test " + p.section.substr(0, p.section.find('/')) + " program on " +
                                 p.target
                           : std::string("a test ") + ProgTypeName(p.prog_type) + " program";
    if (fd < 0) {
      res = std::string("BPF program type ") + ProgTypeName(p.prog_type) + " refused (" + test +
            ": " + strerror(e) + ")";
    } else if (r != 1) {
      res = std::string("BPF program type ") + ProgTypeName(p.prog_type) +
            " not supported (libbpf_probe_bpf_prog_type: " +
            (r < 0 ? strerror(-r) : "refused") + ")";
    } else if (p.prog_type == BPF_PROG_TYPE_TRACING && !trampoline_tested_) {
      trampoline_tested_ = true;
      int link = bpf_link_create(fd, 0, static_cast<enum bpf_attach_type>(p.attach_type), nullptr);
      if (link < 0)
        res = "attaching " + test + " refused (BPF trampolines): " + strerror(errno);
      else
        close(link);
    }
    if (fd >= 0) close(fd);
    why = res;
    return why.empty();
  }

  // The helper is callable from this program's type / attach type / target:
  // a `call N; r0 = 0; exit` program is loaded and the verifier log read,
  // as libbpf_probe_bpf_helper() does. Not that function itself: libbpf 1.1
  // does not recognise the "program of this type cannot use helper" message
  // of kernels 6.x (it reports the helper as available) and refuses tracing
  // programs (they need an attach target).
  bool Helper(const ProgramNeeds &p, int btf_id, int helper, std::string &why) {
    auto key = std::make_tuple(p.prog_type, p.attach_type, btf_id, helper);
    auto it = helper_ok_.find(key);
    if (it != helper_ok_.end()) {
      why = it->second;
      return why.empty();
    }
    std::string &res = helper_ok_[key];
    struct bpf_insn insns[] = {
        {BPF_JMP | BPF_CALL, 0, 0, 0, helper},              // call helper
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
    };
    char log[8192] = "";
    LIBBPF_OPTS(bpf_prog_load_opts, opts,
                .expected_attach_type = static_cast<enum bpf_attach_type>(p.attach_type),
                .kern_version = static_cast<__u32>(KernelVersionCode()),
                .attach_btf_id = static_cast<__u32>(btf_id), .log_level = 1,
                .log_size = sizeof(log), .log_buf = log);
    int fd = bpf_prog_load(static_cast<enum bpf_prog_type>(p.prog_type), "netmon_probe", "GPL",
                           insns, 3, &opts);
    int e = errno;
    log[sizeof(log) - 1] = '\0';
    std::string name = HelperName(helper) + "#" + std::to_string(helper);
    std::string users = p.prog_type == BPF_PROG_TYPE_TRACING
                            ? std::string("tracing (") +
                                  libbpf_bpf_attach_type_str(
                                      static_cast<enum bpf_attach_type>(p.attach_type)) +
                                  ") programs"
                            : std::string(ProgTypeName(p.prog_type)) + " programs";
    if (fd >= 0) {
      close(fd);
    } else {
      // the verifier's verdict on the call, if it gave one
      std::string verdict;
      for (const char *needle :
           {"invalid func ", "unknown func ", "program of this type cannot use helper "}) {
        const char *at = strstr(log, needle);
        if (!at) continue;
        const char *eol = strchr(at, '\n');
        verdict = std::string(at, eol ? eol - at : strlen(at));
        break;
      }
      if (!verdict.empty()) {
        bool unknown = verdict.compare(0, 13, "invalid func ") == 0;
        res = p.section + " calls " + name + ", which " +
              (unknown ? "this kernel does not have" : users + " cannot use here") +
              " (verifier: " + verdict + ")";
      } else if (log[0] == '\0') {
        // refused before the verifier ran: no verdict on the helper
        res = "probing " + name + " for " + p.section + ": the test program was refused: " +
              strerror(e);
      }
      // otherwise the verifier got past the call (an argument check failed):
      // the helper exists for this program type
    }
    why = res;
    return why.empty();
  }

  // A raw tracepoint exists: kernels with BTF declare btf_trace_<name> for
  // each one.
  bool RawTracepointExists(const std::string &name, std::string &why) {
    if (!Btf(why)) return false;
    if (btf__find_by_name_kind(btf_, ("btf_trace_" + name).c_str(), BTF_KIND_TYPEDEF) >= 0)
      return true;
    why = "no tracepoint " + name + " in this kernel (no btf_trace_" + name + " in its BTF)";
    return false;
  }

  // Kprobes can be attached: the kprobe PMU (or legacy tracefs kprobe_events)
  // exists and a test kprobe on `func` takes a BPF program.
  bool KprobeAttach(const std::string &func, std::string &why) {
    if (kprobe_tested_) {
      why = kprobe_why_;
      return why.empty();
    }
    kprobe_tested_ = true;
    KprobeAttachTest(func, kprobe_why_);
    why = kprobe_why_;
    return why.empty();
  }

 private:
  bool Btf(std::string &why) {
    if (btf_) return true;
    btf_ = btf__load_vmlinux_btf();
    if (!btf_) {
      why = std::string("no kernel BTF: ") + strerror(errno);
      return false;
    }
    return true;
  }

  static void KprobeAttachTest(const std::string &func, std::string &why) {
    int pmu = -1;
    {
      std::ifstream f("/sys/bus/event_source/devices/kprobe/type");
      if (!(f >> pmu)) pmu = -1;
    }
    struct stat st;
    if (pmu < 0) {
      if (stat("/sys/kernel/tracing/kprobe_events", &st) == 0 ||
          stat("/sys/kernel/debug/tracing/kprobe_events", &st) == 0)
        return;  // legacy tracefs kprobes: the real attach decides
      why = "no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events in "
            "tracefs: CONFIG_KPROBES is off";
      return;
    }
    struct bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .kern_version = static_cast<__u32>(KernelVersionCode()));
    int prog = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "netmon_probe", "GPL", insns, 2, &opts);
    if (prog < 0) {
      why = std::string("kprobe programs refused: ") + strerror(errno);
      return;
    }
    struct perf_event_attr attr = {};
    attr.size = sizeof(attr);
    attr.type = pmu;
    attr.config1 = reinterpret_cast<uint64_t>(func.c_str());
    int pfd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    if (pfd < 0) {
      why = "kprobe on " + func + " refused: " + strerror(errno);
      close(prog);
      return;
    }
    if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog) != 0)
      why = std::string("attaching a BPF program to a kprobe refused: ") + strerror(errno);
    close(pfd);
    close(prog);
  }

  struct btf *btf_ = nullptr;
  std::map<std::tuple<int, int, int>, std::string> type_ok_;
  std::map<std::tuple<int, int, int, int>, std::string> helper_ok_;
  bool trampoline_tested_ = false;
  bool kprobe_tested_ = false;
  std::string kprobe_why_;
};

bool HasCap(const __u32 eff[2], int cap) { return eff[cap / 32] & (1u << (cap % 32)); }

// Effective capabilities of this thread: CAP_SYS_ADMIN, or CAP_BPF with
// CAP_PERFMON (tracing reads); CAP_NET_ADMIN for the cgroup socket hooks
// (sockops is attached in every mode).
bool CheckPrivileges(Failure &f) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0)
    return Fail(f, "ESYS", "privileges", "capget", errno);
  __u32 eff[2] = {data[0].effective, data[1].effective};
  if (HasCap(eff, CAP_SYS_ADMIN)) return true;  // root, or CAP_SYS_ADMIN: everything below
  // Name exactly what is missing: an operator granting capabilities one by
  // one (setpriv, systemd, Kubernetes) needs to know which.
  std::string missing;
  const struct { int cap; const char *name; const char *why; } needed[] = {
      {39, "CAP_BPF", "to load the programs and maps"},
      {38, "CAP_PERFMON", "to read kernel memory from the programs"},
      {CAP_NET_ADMIN, "CAP_NET_ADMIN", "to attach the cgroup socket hooks"},
  };
  for (const auto &n : needed)
    if (!HasCap(eff, n.cap)) missing += std::string(missing.empty() ? "" : ", ") + n.name + " (" + n.why + ")";
  if (!missing.empty())
    return Fail(f, "EPRIV", "privileges",
                "missing " + missing + " (uid " + std::to_string(geteuid()) + ", not root)", EPERM);
  return true;
}

// First cgroup v2 mount (pure v2 at /sys/fs/cgroup, or hybrid .../unified).
std::string Cgroup2Root() {
  FILE *m = setmntent("/proc/self/mounts", "r");
  if (!m) return "";
  std::string root;
  while (struct mntent *e = getmntent(m)) {
    if (strcmp(e->mnt_type, "cgroup2") == 0) {
      root = e->mnt_dir;
      break;
    }
  }
  endmntent(m);
  return root;
}

bool PathExists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

// The line of a verifier log tail that says why (not the statistics).
std::string VerdictLine(const std::string &detail) {
  std::string best;
  size_t start = 0;
  while (start < detail.size()) {
    size_t nl = detail.find('\n', start);
    std::string line =
        detail.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty() && !StartsWith(line, "processed ") &&
        !StartsWith(line, "verification time") && !StartsWith(line, "stack depth") &&
        !StartsWith(line, "libbpf: "))
      best = line;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return best;
}

std::string AttemptLine(const Attempt &a) {
  if (a.ok) {
    std::string s = std::string(ModeName(a.mode)) + " loaded and attached";
    return a.message.empty() ? s : s + " (" + a.message + ")";
  }
  return std::string(ModeName(a.mode)) + " failed (" + a.step + ": " + a.message + ")";
}

std::string Chain(const std::vector<Attempt> &attempts) {
  std::string s;
  for (const auto &a : attempts) {
    if (!s.empty()) s += "; ";
    s += AttemptLine(a);
  }
  return s;
}

std::string Join(const std::vector<std::string> &v, const char *sep) {
  std::string s;
  for (const auto &x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

}  // namespace

// ---- public: the object and its requirements ---------------------------

bool WantedIn(Mode mode, const char *sec) {
  if (mode == Mode::Auto) return false;
  if (IsTracingOnlyProg(sec)) return mode == Mode::Fentry;
  if (IsKprobeProg(sec)) return mode == Mode::Kprobe;
  // tracepoint mode's Accept and Listen (sys_exit, io_uring completions), Close,
  // and the cookie every TCP socket gets at creation (a listener's is read later)
  if (strcmp(sec, "raw_tp/sys_exit") == 0 || strcmp(sec, "raw_tp/io_uring_complete") == 0 ||
      strcmp(sec, "cgroup/sock_release") == 0 || strcmp(sec, "cgroup/sock_create") == 0)
    return mode == Mode::Tracepoint;
  // sockops (cookies and the per-socket state closes need), exec, fork, exit
  return true;
}

bool IsOptional(const char *sec) {
  // kernels built without CONFIG_IO_URING have no such tracepoint; the DNS
  // capture needs bpf_cast_to_kern_ctx (6.2+): neither may cost the mode
  return strcmp(sec, "raw_tp/io_uring_complete") == 0 || strcmp(sec, "cgroup_skb/ingress") == 0;
}

std::string HelperName(int id) {
#define NETMON_HELPER_NAME(x) "bpf_" #x  // the mapper adds the commas
  static const char *const kNames[] = {__BPF_FUNC_MAPPER(NETMON_HELPER_NAME)};
#undef NETMON_HELPER_NAME
  if (id > 0 && static_cast<size_t>(id) < sizeof(kNames) / sizeof(kNames[0])) return kNames[id];
  return "helper";
}

bool DescribeObject(std::vector<ProgramNeeds> &out, std::string &err) {
  InstallPrint();
  out.clear();
  size_t size = 0;
  const void *bytes = netmon_bpf__elf_bytes(&size);
  std::map<std::string, std::pair<std::string, std::vector<int>>> helpers;
  if (!ElfHelpers(bytes, size).Parse(helpers, err)) return false;
  SkelPtr skel(netmon_bpf__open());
  if (!skel) {
    err = std::string("opening the BPF object: ") + strerror(errno);
    return false;
  }
  struct bpf_program *prog;
  bpf_object__for_each_program(prog, skel->obj) {
    ProgramNeeds p;
    p.name = bpf_program__name(prog);
    p.section = bpf_program__section_name(prog);
    p.prog_type = bpf_program__type(prog);
    p.attach_type = bpf_program__expected_attach_type(prog);
    p.target = TargetOf(p.section, p.prog_type);
    p.optional = IsOptional(p.section.c_str());
    auto it = helpers.find(p.name);
    if (it == helpers.end() || it->second.first != p.section) {
      err = "program " + p.name + " (" + p.section + ") not found in the object's symbols";
      return false;
    }
    p.helpers = it->second.second;
    out.push_back(std::move(p));
  }
  return true;
}

std::vector<HelperProbe> HelperProbes(Mode mode, const std::vector<ProgramNeeds> &all) {
  std::vector<HelperProbe> out;
  for (const auto &p : all) {
    if (!WantedIn(mode, p.section.c_str())) continue;
    for (int h : p.helpers) out.push_back({&p, h});
  }
  return out;
}

const char *ModeName(Mode m) {
  switch (m) {
    case Mode::Auto: return "auto";
    case Mode::Fentry: return "fentry";
    case Mode::Kprobe: return "kprobe";
    case Mode::Tracepoint: return "tracepoint";
  }
  return "?";
}

void SkelDeleter::operator()(netmon_bpf *s) const { netmon_bpf__destroy(s); }
void LinkDeleter::operator()(bpf_link *l) const { bpf_link__destroy(l); }
void RingDeleter::operator()(ring_buffer *r) const { ring_buffer__free(r); }

Fd &Fd::operator=(Fd &&o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}
Fd::~Fd() { reset(); }
void Fd::reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Loaded::~Loaded() = default;

void Loaded::Detach() {
  // pinned links stay attached for the next sensor: let go without detaching
  if (pinned_)
    for (auto &link : links_) bpf_link__disconnect(link.get());
  links_.clear();
  cgroup_fd_.reset();
}

bool Loaded::ReadLost(std::vector<uint64_t> &by_kind) const {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0 || (!skel_ && lost_fd_.get() < 0)) return false;
  std::vector<uint64_t> vals(ncpu);
  by_kind.assign(NETMON_KIND_MAX, 0);
  int fd = skel_ ? bpf_map__fd(skel_->maps.lost) : lost_fd_.get();
  for (__u32 k = 0; k < NETMON_KIND_MAX; k++) {
    if (bpf_map_lookup_elem(fd, &k, vals.data()) != 0) return false;
    for (uint64_t v : vals) by_kind[k] += v;
  }
  return true;
}

// One mode: probe -> open -> set -> load -> attach -> ring buffer.
struct LoadState {
  uint32_t ring_bytes;
  SampleFn fn;
  void *ctx;
  int cgroup_fd;
  const std::vector<ProgramNeeds> &programs;
  const TestHooks &hooks;
  Prober &prober;

  // Checks every program type, hook and helper `mode` uses. Optional
  // programs whose needs are missing go into `skip` with a note.
  bool Probe(Mode mode, std::set<std::string> &skip, std::vector<std::string> &notes,
             Failure &f) {
    const std::string lacks = LacksLabel(mode);
    if (mode == Mode::Kprobe) {
      std::string func = "tcp_close", why;
      for (const auto &p : programs)
        if (WantedIn(mode, p.section.c_str()) && p.prog_type == BPF_PROG_TYPE_KPROBE) {
          func = p.target;
          break;
        }
      if (!prober.KprobeAttach(func, why)) return Fail(f, "EMODE", "probe", lacks + why, 0);
    }
    std::map<const ProgramNeeds *, int> btf_ids;
    for (const auto &p : programs) {
      if (!WantedIn(mode, p.section.c_str())) continue;
      std::string why;
      int btf_id = 0;
      bool ok = true;
      if (p.prog_type == BPF_PROG_TYPE_TRACING) ok = prober.TracingTarget(p, p.target, btf_id, why);
      if (ok) ok = prober.ProgType(p, btf_id, why);
      if (ok && p.optional && IsRawTpProg(p.section.c_str()) &&
          !prober.RawTracepointExists(hooks.HookOf(p), why)) {
        ok = false;
        why += MissingHint(p.section);
      }
      if (!ok) {
        if (p.optional) {
          skip.insert(p.section);
          notes.push_back(p.section + " skipped: " + why + SkipCost(p.section));
          continue;
        }
        return Fail(f, "EMODE", "probe", lacks + why, 0);
      }
      btf_ids[&p] = btf_id;
    }
    for (const HelperProbe &hp : HelperProbes(mode, programs)) {
      const ProgramNeeds &p = *hp.program;
      if (skip.count(p.section)) continue;
      std::string why;
      if (prober.Helper(p, btf_ids[&p], hp.helper, why)) continue;
      if (p.optional) {
        skip.insert(p.section);
        notes.push_back(p.section + " skipped: " + why + SkipCost(p.section));
        continue;
      }
      return Fail(f, "EMODE", "probe", lacks + why, 0);
    }
    return true;
  }

  bool Attach(Mode mode, Loaded &l, std::vector<std::string> &notes, Failure &f) {
    netmon_bpf *skel = l.skel_.get();
    struct bpf_program *prog;
    bool broken_attach = hooks.Breaks(mode, "attach");
    bpf_object__for_each_program(prog, skel->obj) {
      if (!bpf_program__autoload(prog)) continue;
      const char *sec = bpf_program__section_name(prog);
      const ProgramNeeds *p = Find(sec, bpf_program__name(prog));
      enum bpf_prog_type type = bpf_program__type(prog);
      std::string hook = p ? hooks.HookOf(*p) : "";
      bool test = p && hook != p->target;
      if (broken_attach && OwnedBy(mode, sec) &&
          (type == BPF_PROG_TYPE_KPROBE || type == BPF_PROG_TYPE_RAW_TRACEPOINT)) {
        hook = TestHooks::BrokenTarget(mode);
        test = true;
      }
      struct bpf_link *link;
      if (type == BPF_PROG_TYPE_SOCK_OPS || type == BPF_PROG_TYPE_CGROUP_SOCK ||
          type == BPF_PROG_TYPE_CGROUP_SKB)
        link = bpf_program__attach_cgroup(prog, cgroup_fd);
      else if (test && type == BPF_PROG_TYPE_KPROBE)
        link = bpf_program__attach_kprobe(prog, strncmp(sec, "kretprobe/", 10) == 0, hook.c_str());
      else if (test && type == BPF_PROG_TYPE_RAW_TRACEPOINT)
        link = bpf_program__attach_raw_tracepoint(prog, hook.c_str());
      else
        link = bpf_program__attach(prog);
      if (!link) {
        int e = errno;
        std::string what = std::string("attaching ") + sec + (test ? " to " + hook : "");
        if (e == ENOENT && p && p->optional && hook != TestHooks::BrokenTarget(mode)) {
          notes.push_back(std::string(sec) + " skipped: its hook " + hook +
                          " does not exist" + MissingHint(sec) + SkipCost(sec));
          continue;
        }
        if (e == ENOENT)
          return Fail(f, "ENOHOOK", "attach", what + ": the hook does not exist", e);
        if (e == EPERM || e == EACCES) return Fail(f, "EPRIV", "attach", what, e);
        if (mode == Mode::Kprobe && IsKprobeProg(sec))
          return Fail(f, "EMODE", "attach", "kernel lacks kprobes: " + what, e);
        return Fail(f, "ESYS", "attach", what, e, LogTail(5));
      }
      l.links_.emplace_back(link);
    }
    return true;
  }

  const ProgramNeeds *Find(const char *sec, const char *name) const {
    for (const auto &p : programs)
      if (p.section == sec && p.name == name) return &p;
    return nullptr;
  }

  // open -> set -> load, with the programs in `skip` not loaded.
  bool OpenAndLoad(Mode mode, const std::set<std::string> &skip, Loaded &l, Failure &f) {
    l.skel_ = SkelPtr(netmon_bpf__open());
    if (!l.skel_) return Fail(f, "ESYS", "open", "opening the BPF object", errno);
    netmon_bpf *skel = l.skel_.get();

    // settings
    skel->rodata->netmon_mode = static_cast<__u32>(mode);
    skel->rodata->nr_accept = SYS_accept;
    skel->rodata->nr_accept4 = SYS_accept4;
    skel->rodata->nr_listen = SYS_listen;
    // Batch wake-ups: 1/16 of the ring, at most 256 KiB; the poll thread's
    // timer (kPollIntervalMs in addon.cc) picks up whatever stays below it.
    skel->rodata->wakeup_bytes = std::min<uint64_t>(ring_bytes / 16, 256 * 1024);
    int err = bpf_map__set_max_entries(skel->maps.events, ring_bytes);
    if (err) return Fail(f, "EARG", "open", "setting the ring buffer size", -err);
    bool broken_load = hooks.Breaks(mode, "load");
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, skel->obj) {
      const char *sec = bpf_program__section_name(prog);
      bool on = WantedIn(mode, sec) && !skip.count(sec);
      bpf_program__set_autoload(prog, on);
      if (!on) continue;
      // Under test: a BTF attach target that does not exist; libbpf refuses
      // to resolve it, so the program cannot be loaded.
      const ProgramNeeds *p = Find(sec, bpf_program__name(prog));
      std::string target;
      if (broken_load && OwnedBy(mode, sec))
        target = TestHooks::BrokenTarget(mode);
      else if (hooks.break_load.count(sec))
        target = "netmon_test_broken_load";
      else if (p && bpf_program__type(prog) == BPF_PROG_TYPE_TRACING &&
               hooks.HookOf(*p) != p->target)
        target = hooks.HookOf(*p);
      if (target.empty()) continue;
      err = bpf_program__set_attach_target(prog, 0, target.c_str());
      if (err)
        return Fail(f, "ENOHOOK", "load",
                    std::string("loading ") + sec + ": attach target " + target +
                        " not found in the kernel's BTF",
                    -err, LogTail(3));
    }

    err = netmon_bpf__load(skel);
    if (err) {
      int e = -err;
      if (e == EPERM)
        return Fail(f, "EPRIV", "load",
                    "loading the BPF programs: not root or missing CAP_BPF/CAP_PERFMON", e);
      if (LogHasVerifierOutput())
        return Fail(f, "EVERIFIER", "load", "the verifier rejected a program", e, LogTail(15));
      return Fail(f, "ESYS", "load", "loading the BPF object", e, LogTail(10));
    }
    return true;
  }

  bool Try(Mode mode, std::unique_ptr<Loaded> &out, std::vector<std::string> &notes, Failure &f) {
    ClearLog();
    std::set<std::string> skip;
    if (!Probe(mode, skip, notes, f)) return false;
    auto l = std::unique_ptr<Loaded>(new Loaded());
    ClearLog();
    if (!OpenAndLoad(mode, skip, *l, f)) {
      // An optional program must not cost the mode, nor another optional
      // one: load again without each in turn, then without all of them.
      std::vector<std::string> optional;
      for (const auto &p : programs)
        if (p.optional && WantedIn(mode, p.section.c_str()) && !skip.count(p.section))
          optional.push_back(p.section);
      if (optional.empty() || f.step != "load") return false;
      Failure first = f;
      std::vector<std::vector<std::string>> tries;
      for (const std::string &sec : optional) tries.push_back({sec});
      if (optional.size() > 1) tries.push_back(optional);
      bool loaded = false;
      std::vector<std::string> dropped;
      for (const auto &without : tries) {
        std::set<std::string> fewer = skip;
        fewer.insert(without.begin(), without.end());
        l.reset(new Loaded());
        ClearLog();
        if (OpenAndLoad(mode, fewer, *l, f)) {
          loaded = true;
          dropped = without;
          break;
        }
      }
      if (!loaded) return false;
      std::string why = first.message;
      std::string verdict = VerdictLine(first.detail);
      if (!verdict.empty()) why += ": " + verdict;
      notes.push_back(Join(dropped, ", ") + " skipped: loading the object with it failed (" +
                      why + ")" + SkipCost(dropped.size() == 1 ? dropped[0] : ""));
    }
    if (!Attach(mode, *l, notes, f)) return false;
    l->ring_ = RingPtr(ring_buffer__new(bpf_map__fd(l->skel_->maps.events),
                                        reinterpret_cast<ring_buffer_sample_fn>(fn), ctx,
                                        nullptr));
    if (!l->ring_) return Fail(f, "ESYS", "ringbuf", "creating the ring buffer consumer", errno);
    l->mode_ = mode;
    out = std::move(l);
    return true;
  }
};

bool Load(Mode requested, uint32_t ring_bytes, const std::string &pin_dir, SampleFn fn,
          void *ctx, std::unique_ptr<Loaded> &out, Failure &fail) {
  InstallPrint();
  ClearLog();
  long page = sysconf(_SC_PAGESIZE);
  if (ring_bytes == 0 || (ring_bytes & (ring_bytes - 1)) || ring_bytes % page)
    return Fail(fail, "EARG", "open",
                "ring buffer size " + std::to_string(ring_bytes) +
                    " is not a power of 2 multiple of the page size",
                EINVAL);
  if (requested != Mode::Auto && requested != Mode::Fentry && requested != Mode::Kprobe &&
      requested != Mode::Tracepoint)
    return Fail(fail, "EARG", "open",
                "unknown attach mode " + std::to_string(static_cast<int>(requested)), EINVAL);
  if (!CheckPrivileges(fail)) return false;
  if (!pin_dir.empty()) {
    if (AdoptPinned(pin_dir, ring_bytes, requested, fn, ctx, out, fail)) return true;
    if (!fail.code.empty()) return false;
  }
  if (!PathExists(kVmlinuxBtf))
    return Fail(fail, "ENOBTF", "btf",
                std::string("no BTF: ") + kVmlinuxBtf +
                    " missing (kernel built without CONFIG_DEBUG_INFO_BTF)",
                ENOENT);
  // Every mode attaches sockops to the cgroup v2 root.
  std::string root = Cgroup2Root();
  if (root.empty())
    return Fail(fail, "ENOCGROUP2", "attach",
                "no cgroup v2 mount, needed by the sockops and sock_release hooks", ENOENT);
  Fd cgroup_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cgroup_fd.get() < 0)
    return Fail(fail, "ENOCGROUP2", "attach", "opening cgroup v2 root " + root, errno);

  std::vector<ProgramNeeds> programs;
  std::string err;
  if (!DescribeObject(programs, err)) return Fail(fail, "ESYS", "open", err, 0);

  TestHooks hooks = TestHooks::Read();
  Prober prober;
  LoadState st{ring_bytes, fn, ctx, cgroup_fd.get(), programs, hooks, prober};
  std::vector<Mode> modes;
  if (requested == Mode::Auto)
    modes.assign(std::begin(kAutoOrder), std::end(kAutoOrder));
  else
    modes.push_back(requested);

  std::vector<Attempt> attempts;
  Failure last;
  for (Mode mode : modes) {
    std::unique_ptr<Loaded> l;
    std::vector<std::string> notes;
    Failure f;
    if (st.Try(mode, l, notes, f)) {
      Attempt a{mode, true, "", "", OneLine(Join(notes, "; "))};
      attempts.push_back(a);
      if (requested == Mode::Auto)
        l->reason_ = "auto: " + Chain(attempts);
      else
        l->reason_ = a.message.empty() ? "forced by configuration"
                                       : "forced by configuration (" + a.message + ")";
      l->attempts_ = attempts;
      l->cgroup_fd_ = std::move(cgroup_fd);
      if (!pin_dir.empty()) l->reason_ += "; " + PinLoaded(*l, pin_dir, ring_bytes, fn, ctx);
      out = std::move(l);
      return true;
    }
    std::string why = f.message;
    std::string verdict = f.code == "EVERIFIER" ? VerdictLine(f.detail) : "";
    if (!verdict.empty()) why += ": " + verdict;
    attempts.push_back({mode, false, f.code, f.step, OneLine(why)});
    last = f;
    if (requested != Mode::Auto) {
      fail = f;
      fail.attempts = attempts;
      return false;
    }
  }
  // auto, and no mode works
  fail = last;
  fail.code = "ENOMODE";
  fail.message = "no attach mode works here: " + Chain(attempts);
  fail.attempts = attempts;
  return false;
}

int64_t BootToRealtimeOffsetNs() {
  struct timespec b1, r, b2;
  clock_gettime(CLOCK_BOOTTIME, &b1);
  clock_gettime(CLOCK_REALTIME, &r);
  clock_gettime(CLOCK_BOOTTIME, &b2);
  int64_t boot = (static_cast<int64_t>(b1.tv_sec) * 1000000000 + b1.tv_nsec +
                  static_cast<int64_t>(b2.tv_sec) * 1000000000 + b2.tv_nsec) / 2;
  return static_cast<int64_t>(r.tv_sec) * 1000000000 + r.tv_nsec - boot;
}

}  // namespace netmon
