// SPDX-License-Identifier: Apache-2.0
// Netmon loader: mode requirements and feature probing, open -> settings ->
// probe -> load -> attach -> ring buffer, each step with its own error, and
// the fallback of `auto` from one mode to the next. Plain C++, no N-API here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct netmon_bpf;
struct bpf_link;
struct ring_buffer;

namespace netmon {

enum class Mode : int { Auto = 0, Fentry = 1, Kprobe = 2, Tracepoint = 3 };

const char *ModeName(Mode m);

// The order `auto` tries the modes in.
constexpr Mode kAutoOrder[] = {Mode::Fentry, Mode::Kprobe, Mode::Tracepoint};

// One mode tried by Load(): what failed, or the notes of the one that worked.
struct Attempt {
  Mode mode = Mode::Auto;
  bool ok = false;
  std::string code;     // the failure's code (see Failure), empty when ok
  std::string step;     // the failure's step
  std::string message;  // one line: the failure, or the notes when ok
};

// Why a step failed. `code` is a stable token the TypeScript side maps to an
// error class: EPRIV, ENOBTF, EVERIFIER, ENOHOOK, EMODE, ENOMODE, ENOCGROUP2,
// EARG, ESYS.
struct Failure {
  std::string code;
  std::string step;     // privileges, btf, probe, open, load, attach, ringbuf
  std::string message;  // one line, with strerror of the cause
  std::string detail;   // verifier log tail, when there is one
  int err = 0;          // errno of the cause (positive), 0 if none
  std::vector<Attempt> attempts;  // modes tried (auto: each with why it failed)
};

// A program of the BPF object and what it needs from the kernel.
struct ProgramNeeds {
  std::string name;     // function name (libbpf program name)
  std::string section;  // ELF section, e.g. "fexit/inet_csk_accept"
  int prog_type = 0;    // enum bpf_prog_type (libbpf's, from the section)
  int attach_type = 0;  // enum bpf_attach_type (expected attach type)
  std::string target;   // hook name: function, tracepoint; empty for cgroup hooks
  bool optional = false;  // skipped, not fatal, when its hook is missing
  // Helper ids its instructions call (BPF_CALL with src_reg 0), including
  // those of the subprograms it calls; sorted, unique.
  std::vector<int> helpers;
};

// Every program of the object built into the addon (netmon.skel.h), in
// object order. Needs no privileges.
bool DescribeObject(std::vector<ProgramNeeds> &out, std::string &err);

// Which programs a mode loads (by section name). The one rule the loader and
// the tests use.
bool WantedIn(Mode mode, const char *section);

// Programs whose hook may be missing: skipped (and said so in the reason)
// instead of failing the mode.
bool IsOptional(const char *section);

// Name of a helper id ("bpf_get_func_ret"), from the build's uapi header.
std::string HelperName(int id);

// One helper a mode's program calls, as the loader probes it: the helper in
// that program's type (and expected attach type, and BTF target for tracing
// programs).
struct HelperProbe {
  const ProgramNeeds *program;
  int helper;
};

// What the loader probes before loading `mode`: every helper of every
// program WantedIn(mode), per program. `all` is DescribeObject()'s list.
std::vector<HelperProbe> HelperProbes(Mode mode, const std::vector<ProgramNeeds> &all);

// RAII deleters for libbpf objects.
struct SkelDeleter { void operator()(netmon_bpf *s) const; };
struct LinkDeleter { void operator()(bpf_link *l) const; };
struct RingDeleter { void operator()(ring_buffer *r) const; };
using SkelPtr = std::unique_ptr<netmon_bpf, SkelDeleter>;
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;
using RingPtr = std::unique_ptr<ring_buffer, RingDeleter>;

// Owned fd, closed once.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  Fd(Fd &&o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd &operator=(Fd &&o) noexcept;
  ~Fd();
  int get() const { return fd_; }
  void reset();

 private:
  int fd_ = -1;
};

// Callback for each ring buffer sample (poll thread).
using SampleFn = int (*)(void *ctx, void *data, size_t size);

struct LoadState;

// A loaded and attached set of programs. Built by Load(); destroying it
// detaches everything and frees the maps.
class Loaded {
 public:
  ~Loaded();
  Mode mode() const { return mode_; }
  const std::string &reason() const { return reason_; }
  const std::vector<Attempt> &attempts() const { return attempts_; }
  ring_buffer *ring() const { return ring_.get(); }
  // Sum of the per-CPU lost counters, per kind (index = enum netmon_kind).
  // Any thread; reads the map through its fd.
  bool ReadLost(std::vector<uint64_t> &by_kind) const;
  // Detach every program (idempotent). Called by the poll thread on stop.
  // Pinned programs stay attached: only this process lets go of them.
  void Detach();
  // The programs are pinned in bpffs and outlive this process.
  bool pinned() const { return pinned_; }

 private:
  friend bool Load(Mode, uint32_t, const std::string &, SampleFn, void *, std::unique_ptr<Loaded> &, Failure &);
  friend struct LoadState;
  friend struct Pins;
  Mode mode_ = Mode::Tracepoint;
  std::string reason_;
  std::vector<Attempt> attempts_;
  Fd cgroup_fd_;
  SkelPtr skel_;
  std::vector<LinkPtr> links_;
  RingPtr ring_;
  // An adopted set (no skeleton): the pinned maps this process reads.
  Fd events_fd_;
  Fd lost_fd_;
  bool pinned_ = false;
};

// Checks the requested mode's requirements (program types, helpers, hooks),
// then open -> set -> load -> attach -> ring buffer. `auto` tries fentry,
// kprobe, tracepoint in turn and uses the first that loads and attaches; a
// forced mode fails with its own error. Called on the JS thread; blocking
// (the verifier runs here).
//
// Test hooks (environment, read on each call):
//   NETMON_TEST_BREAK_MODE=mode[:load|:attach],...  makes libbpf's load or
//     attach of that mode's own programs really fail: :load gives them a
//     nonexistent BTF attach target (bpf_program__set_attach_target), :attach
//     attaches them to a nonexistent kprobe/raw tracepoint. Default :load for
//     fentry, :attach for the others.
//   NETMON_TEST_MISSING_HOOK=section,...  treats those programs' hook as
//     missing by renaming it to a nonexistent one (an optional program is
//     then skipped; any other fails its mode at attach).
//   NETMON_TEST_BREAK_LOAD=section,...  makes the load of those programs fail
//     (nonexistent BTF attach target): an optional one is dropped and the
//     object loaded again without it.
//
// pin_dir (a directory on bpffs; "" for none): the programs' links and the
// maps the sensor reads are pinned under pin_dir/<version>-<mode>-<links>, so
// they keep running (the ring buffer filling) while no sensor runs. A later
// Load() with the same object and ring size adopts them (nothing is missed
// between two sensor processes); a different version loads and attaches its
// own, then drains and removes the others.
bool Load(Mode requested, uint32_t ring_bytes, const std::string &pin_dir, SampleFn fn,
          void *ctx, std::unique_ptr<Loaded> &out, Failure &fail);

// pins.cc: the set an earlier sensor of this version pinned under `root`
// (false, fail empty, when there is none; false with fail set when `root` is
// unusable), and the pinning of a freshly attached set (returns a note).
bool AdoptPinned(const std::string &root, uint32_t ring_bytes, Mode requested, SampleFn fn, void *ctx,
                 std::unique_ptr<Loaded> &out, Failure &fail);
std::string PinLoaded(Loaded &l, const std::string &root, uint32_t ring_bytes, SampleFn fn, void *ctx);

// Nanoseconds to add to a CLOCK_BOOTTIME stamp to get CLOCK_REALTIME.
int64_t BootToRealtimeOffsetNs();

}  // namespace netmon
