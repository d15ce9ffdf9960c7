// SPDX-License-Identifier: Apache-2.0
// Netmon loader: see loader.h. Every function here runs on the JS thread
// unless its comment says otherwise.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <mntent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <deque>
#include <fstream>
#include <mutex>

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

bool Fail(Failure &f, const char *code, const char *step, const std::string &msg, int err,
          std::string detail = "") {
  f.code = code;
  f.step = step;
  f.err = err;
  f.message = err ? msg + ": " + strerror(err) : msg;
  f.detail = std::move(detail);
  return false;
}

bool HasCap(const __u32 eff[2], int cap) { return eff[cap / 32] & (1u << (cap % 32)); }

// Effective capabilities of this thread: CAP_SYS_ADMIN, or CAP_BPF with
// CAP_PERFMON (tracing reads); CAP_NET_ADMIN for the cgroup socket hooks.
bool CheckPrivileges(Mode mode, Failure &f) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0)
    return Fail(f, "ESYS", "privileges", "capget", errno);
  __u32 eff[2] = {data[0].effective, data[1].effective};
  bool admin = HasCap(eff, CAP_SYS_ADMIN);
  bool bpf = admin || (HasCap(eff, 39 /* CAP_BPF */) && HasCap(eff, 38 /* CAP_PERFMON */));
  bool net = admin || HasCap(eff, CAP_NET_ADMIN);
  if (!bpf)
    return Fail(f, "EPRIV", "privileges",
                "not root or missing CAP_BPF/CAP_PERFMON (uid " + std::to_string(geteuid()) +
                    ")",
                EPERM);
  if (!net && mode != Mode::Fentry)
    return Fail(f, "EPRIV", "privileges",
                "missing CAP_NET_ADMIN, needed to attach the cgroup socket hooks", EPERM);
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

bool IsTracingOnlyProg(const char *sec) {
  return strncmp(sec, "fentry/", 7) == 0 || strncmp(sec, "fexit/", 6) == 0;
}
bool IsKprobeProg(const char *sec) {
  return strncmp(sec, "kprobe/", 7) == 0 || strncmp(sec, "kretprobe/", 10) == 0;
}

// Which programs a mode loads. exec/exit raw tracepoints load in every mode;
// sockops also in kprobe mode, where it only assigns cookies.
bool WantedIn(Mode mode, const char *sec) {
  if (IsTracingOnlyProg(sec)) return mode == Mode::Fentry;
  if (IsKprobeProg(sec)) return mode == Mode::Kprobe;
  if (strcmp(sec, "sockops") == 0) return mode != Mode::Fentry;
  if (strcmp(sec, "raw_tp/sys_exit") == 0 || strcmp(sec, "cgroup/sock_release") == 0)
    return mode == Mode::Tracepoint;
  return true;
}

}  // namespace

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
  links_.clear();
  cgroup_fd_.reset();
}

bool Loaded::ReadLost(std::vector<uint64_t> &by_kind) const {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0 || !skel_) return false;
  std::vector<uint64_t> vals(ncpu);
  by_kind.assign(NETMON_KIND_MAX, 0);
  int fd = bpf_map__fd(skel_->maps.lost);
  for (__u32 k = 0; k < NETMON_KIND_MAX; k++) {
    if (bpf_map_lookup_elem(fd, &k, vals.data()) != 0) return false;
    for (uint64_t v : vals) by_kind[k] += v;
  }
  return true;
}

bool ProbeFentry(std::string &why) {
  InstallPrint();
  struct btf *btf = btf__load_vmlinux_btf();
  if (!btf) {
    why = std::string("no kernel BTF: ") + strerror(errno);
    return false;
  }
  int id = btf__find_by_name_kind(btf, "tcp_close", BTF_KIND_FUNC);
  btf__free(btf);
  if (id < 0) {
    why = "tcp_close not in kernel BTF";
    return false;
  }
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY,
              .attach_btf_id = static_cast<__u32>(id));
  int prog = bpf_prog_load(BPF_PROG_TYPE_TRACING, "netmon_probe", "GPL", insns, 2, &opts);
  if (prog < 0) {
    why = std::string("BPF tracing programs refused (test fentry on tcp_close: ") +
          strerror(errno) + ")";
    return false;
  }
  int link = bpf_link_create(prog, 0, BPF_TRACE_FENTRY, nullptr);
  int err = errno;
  close(prog);
  if (link < 0) {
    why = std::string("fentry attach refused (test on tcp_close: ") + strerror(err) + ")";
    return false;
  }
  close(link);
  return true;
}

bool ProbeKprobe(std::string &why) {
  InstallPrint();
  int pmu = -1;
  {
    std::ifstream f("/sys/bus/event_source/devices/kprobe/type");
    if (!(f >> pmu)) pmu = -1;
  }
  if (pmu < 0) {
    if (PathExists("/sys/kernel/tracing/kprobe_events") ||
        PathExists("/sys/kernel/debug/tracing/kprobe_events"))
      return true;  // legacy tracefs kprobes: the real attach decides
    why = "no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events in "
          "tracefs: CONFIG_KPROBES is off";
    return false;
  }
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int prog = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "netmon_probe", "GPL", insns, 2, nullptr);
  if (prog < 0) {
    why = std::string("kprobe programs refused: ") + strerror(errno);
    return false;
  }
  struct perf_event_attr attr = {};
  attr.size = sizeof(attr);
  attr.type = pmu;
  attr.config1 = reinterpret_cast<uint64_t>("tcp_close");
  int pfd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
  if (pfd < 0) {
    why = std::string("kprobe on tcp_close refused: ") + strerror(errno);
    close(prog);
    return false;
  }
  bool ok = ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog) == 0;
  if (!ok) why = std::string("attaching a BPF program to a kprobe refused: ") + strerror(errno);
  close(pfd);
  close(prog);
  return ok;
}

bool Load(Mode requested, uint32_t ring_bytes, SampleFn fn, void *ctx,
          std::unique_ptr<Loaded> &out, Failure &fail) {
  InstallPrint();
  ClearLog();
  long page = sysconf(_SC_PAGESIZE);
  if (ring_bytes == 0 || (ring_bytes & (ring_bytes - 1)) || ring_bytes % page)
    return Fail(fail, "EARG", "open",
                "ring buffer size " + std::to_string(ring_bytes) +
                    " is not a power of 2 multiple of the page size",
                EINVAL);
  if (!CheckPrivileges(requested, fail)) return false;
  if (!PathExists(kVmlinuxBtf))
    return Fail(fail, "ENOBTF", "btf",
                std::string("no BTF: ") + kVmlinuxBtf +
                    " missing (kernel built without CONFIG_DEBUG_INFO_BTF)",
                ENOENT);

  auto loaded = std::unique_ptr<Loaded>(new Loaded());
  std::string why_fentry, why_kprobe;
  switch (requested) {
    case Mode::Fentry:
      if (!ProbeFentry(why_fentry))
        return Fail(fail, "EMODE", "probe", "kernel lacks fentry: " + why_fentry, 0);
      loaded->mode_ = Mode::Fentry;
      loaded->reason_ = "forced by configuration";
      break;
    case Mode::Kprobe:
      if (!ProbeKprobe(why_kprobe))
        return Fail(fail, "EMODE", "probe", "kernel lacks kprobes: " + why_kprobe, 0);
      loaded->mode_ = Mode::Kprobe;
      loaded->reason_ = "forced by configuration";
      break;
    case Mode::Tracepoint:
      loaded->mode_ = Mode::Tracepoint;
      loaded->reason_ = "forced by configuration";
      break;
    case Mode::Auto:
      if (ProbeFentry(why_fentry)) {
        loaded->mode_ = Mode::Fentry;
        loaded->reason_ = "auto: a test fentry program loaded and attached";
      } else if (ProbeKprobe(why_kprobe)) {
        loaded->mode_ = Mode::Kprobe;
        loaded->reason_ = "auto: fentry unavailable (" + why_fentry + "); kprobes attach";
      } else {
        loaded->mode_ = Mode::Tracepoint;
        loaded->reason_ = "auto: fentry unavailable (" + why_fentry +
                          "); kprobes unavailable (" + why_kprobe + ")";
      }
      break;
  }
  Mode mode = loaded->mode_;
  ClearLog();

  if (mode != Mode::Fentry) {
    std::string root = Cgroup2Root();
    if (root.empty())
      return Fail(fail, "ENOCGROUP2", "attach",
                  "no cgroup v2 mount, needed by the sockops and sock_release hooks", ENOENT);
    loaded->cgroup_fd_ = Fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (loaded->cgroup_fd_.get() < 0)
      return Fail(fail, "ENOCGROUP2", "attach", "opening cgroup v2 root " + root, errno);
  }

  // open
  loaded->skel_ = SkelPtr(netmon_bpf__open());
  if (!loaded->skel_) return Fail(fail, "ESYS", "open", "opening the BPF object", errno);
  netmon_bpf *skel = loaded->skel_.get();

  // settings
  skel->rodata->netmon_mode = static_cast<__u32>(mode);
  skel->rodata->nr_accept = SYS_accept;
  skel->rodata->nr_accept4 = SYS_accept4;
  // Batch wake-ups: 1/16 of the ring, at most 256 KiB; the poll thread's
  // timer (kPollIntervalMs in addon.cc) picks up whatever stays below it.
  skel->rodata->wakeup_bytes = std::min<uint64_t>(ring_bytes / 16, 256 * 1024);
  int err = bpf_map__set_max_entries(skel->maps.events, ring_bytes);
  if (err) return Fail(fail, "EARG", "open", "setting the ring buffer size", -err);
  struct bpf_program *prog;
  bpf_object__for_each_program(prog, skel->obj) {
    bpf_program__set_autoload(prog, WantedIn(mode, bpf_program__section_name(prog)));
  }

  // load
  err = netmon_bpf__load(skel);
  if (err) {
    int e = -err;
    if (e == EPERM)
      return Fail(fail, "EPRIV", "load",
                  "loading the BPF programs: not root or missing CAP_BPF/CAP_PERFMON", e);
    if (LogHasVerifierOutput())
      return Fail(fail, "EVERIFIER", "load", "the verifier rejected a program", e, LogTail(15));
    return Fail(fail, "ESYS", "load", "loading the BPF object", e, LogTail(10));
  }

  // attach
  bpf_object__for_each_program(prog, skel->obj) {
    if (!bpf_program__autoload(prog)) continue;
    const char *sec = bpf_program__section_name(prog);
    enum bpf_prog_type type = bpf_program__type(prog);
    struct bpf_link *link;
    if (type == BPF_PROG_TYPE_SOCK_OPS || type == BPF_PROG_TYPE_CGROUP_SOCK)
      link = bpf_program__attach_cgroup(prog, loaded->cgroup_fd_.get());
    else
      link = bpf_program__attach(prog);
    if (!link) {
      int e = errno;
      std::string what = std::string("attaching ") + sec;
      if (e == ENOENT)
        return Fail(fail, "ENOHOOK", "attach", what + ": the hook does not exist", e);
      if (e == EPERM || e == EACCES)
        return Fail(fail, "EPRIV", "attach", what, e);
      if (mode == Mode::Kprobe && IsKprobeProg(sec))
        return Fail(fail, "EMODE", "attach", "kernel lacks kprobes: " + what, e);
      return Fail(fail, "ESYS", "attach", what, e, LogTail(5));
    }
    loaded->links_.emplace_back(link);
  }

  // ring buffer
  loaded->ring_ = RingPtr(ring_buffer__new(bpf_map__fd(skel->maps.events),
                                           reinterpret_cast<ring_buffer_sample_fn>(fn), ctx,
                                           nullptr));
  if (!loaded->ring_)
    return Fail(fail, "ESYS", "ringbuf", "creating the ring buffer consumer", errno);

  out = std::move(loaded);
  return true;
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
