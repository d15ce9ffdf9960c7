// SPDX-License-Identifier: Apache-2.0
// Netmon loader: feature probing, open -> settings -> load -> attach -> ring
// buffer, each step with its own error. Plain C++, no N-API here.
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

// Why a step failed. `code` is a stable token the TypeScript side maps to an
// error class: EPRIV, ENOBTF, EVERIFIER, ENOHOOK, EMODE, ENOCGROUP2, ESYS.
struct Failure {
  std::string code;
  std::string step;     // privileges, btf, probe, open, load, attach, ringbuf
  std::string message;  // one line, with strerror of the cause
  std::string detail;   // verifier log tail, when there is one
  int err = 0;          // errno of the cause (positive), 0 if none
};

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

// A loaded and attached set of programs. Built by Load(); destroying it
// detaches everything and frees the maps.
class Loaded {
 public:
  ~Loaded();
  Mode mode() const { return mode_; }
  const std::string &reason() const { return reason_; }
  ring_buffer *ring() const { return ring_.get(); }
  // Sum of the per-CPU lost counters, per kind (index = enum netmon_kind).
  // Any thread; reads the map through its fd.
  bool ReadLost(std::vector<uint64_t> &by_kind) const;
  // Detach every program (idempotent). Called by the poll thread on stop.
  void Detach();

 private:
  friend bool Load(Mode, uint32_t, SampleFn, void *, std::unique_ptr<Loaded> &, Failure &);
  Mode mode_ = Mode::Tracepoint;
  std::string reason_;
  Fd cgroup_fd_;
  SkelPtr skel_;
  std::vector<LinkPtr> links_;
  RingPtr ring_;
};

// Feature probes: true when the mode can load and attach here; otherwise
// `why` says what is missing.
bool ProbeFentry(std::string &why);
bool ProbeKprobe(std::string &why);

// Chooses the mode (probing for Auto), then open -> set -> load -> attach ->
// ring buffer. Called on the JS thread; blocking (the verifier runs here).
bool Load(Mode requested, uint32_t ring_bytes, SampleFn fn, void *ctx,
          std::unique_ptr<Loaded> &out, Failure &fail);

// Nanoseconds to add to a CLOCK_BOOTTIME stamp to get CLOCK_REALTIME.
int64_t BootToRealtimeOffsetNs();

}  // namespace netmon
