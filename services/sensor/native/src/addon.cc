// SPDX-License-Identifier: Apache-2.0
// Netmon native bridge: loads the probes (loader.h), polls the ring buffer on
// its own thread and hands JavaScript one Buffer of packed records per
// wake-up through a typed ThreadSafeFunction.
//
// JS surface (wrapped and validated by src/probe/native.ts):
//   new Probe()
//   probe.start(mode, ringBytes, onBatch(buf), onClose()[, pinDir[, lend]])
//                             -> { mode, reason, attempts }
//                             throws Error with code, step, errno, detail, attempts
//                             lend: buf is only valid during onBatch (its memory
//                             is detached then reused for a later batch)
//   probe.stop()              idempotent; onClose runs once everything is freed
//   probe.lost()              number[] per enum netmon_kind
//   clockOffsetNs()           bigint: CLOCK_REALTIME - CLOCK_BOOTTIME
//   modeRequirements()        the programs of the built-in object and, per mode,
//                             the helpers the loader probes before loading it
//   wantedIn(mode, section)   the loader's rule: does `mode` load that program
#include <bpf/libbpf.h>
#include <napi.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "loader.h"
#include "netmon.h"

// The layout the TypeScript decoder (src/probe/layout.ts) reads.
static_assert(sizeof(struct netmon_hdr) == 16, "netmon_hdr");
static_assert(offsetof(struct netmon_hdr, kind) == 8, "netmon_hdr.kind");
static_assert(offsetof(struct netmon_hdr, size) == 10, "netmon_hdr.size");
static_assert(sizeof(struct netmon_task) == 336, "netmon_task");
static_assert(offsetof(struct netmon_task, pid) == 40, "netmon_task.pid");
static_assert(offsetof(struct netmon_task, auid) == 60, "netmon_task.auid");
static_assert(offsetof(struct netmon_task, comm) == 64, "netmon_task.comm");
static_assert(offsetof(struct netmon_task, cgroup_path) == 80, "netmon_task.cgroup_path");
static_assert(sizeof(struct netmon_tuple) == 40, "netmon_tuple");
static_assert(offsetof(struct netmon_tuple, daddr) == 16, "tuple.daddr");
static_assert(offsetof(struct netmon_tuple, sport) == 32, "tuple.sport");
static_assert(offsetof(struct netmon_tuple, dport) == 34, "tuple.dport");
static_assert(offsetof(struct netmon_tuple, family) == 36, "tuple.family");
static_assert(offsetof(struct netmon_tuple, flags) == 38, "tuple.flags");
static_assert(offsetof(struct netmon_tuple, state) == 39, "tuple.state");
static_assert(sizeof(struct netmon_sock_event) == 432, "netmon_sock_event");
static_assert(offsetof(struct netmon_sock_event, task) == 16, "sock.task");
static_assert(offsetof(struct netmon_sock_event, tuple) == 352, "sock.tuple");
static_assert(offsetof(struct netmon_sock_event, cookie) == 392, "sock.cookie");
static_assert(offsetof(struct netmon_sock_event, open_ns) == 400, "sock.open_ns");
static_assert(offsetof(struct netmon_sock_event, bytes_acked) == 408, "sock.bytes_acked");
static_assert(offsetof(struct netmon_sock_event, bytes_received) == 416, "sock.bytes_received");
static_assert(offsetof(struct netmon_sock_event, netns) == 424, "sock.netns");
static_assert(offsetof(struct netmon_sock_event, err) == 428, "sock.err");
static_assert(sizeof(struct netmon_dns_event) == 1264, "netmon_dns_event");
static_assert(offsetof(struct netmon_dns_event, netns) == 16, "dns.netns");
static_assert(offsetof(struct netmon_dns_event, len) == 20, "dns.len");
static_assert(offsetof(struct netmon_dns_event, orig_len) == 22, "dns.orig_len");
static_assert(offsetof(struct netmon_dns_event, transport) == 24, "dns.transport");
static_assert(offsetof(struct netmon_dns_event, payload) == 32, "dns.payload");
static_assert(sizeof(struct netmon_exec_event) == 8552, "netmon_exec_event");
static_assert(offsetof(struct netmon_exec_event, secureexec) == 352, "exec.secureexec");
static_assert(offsetof(struct netmon_exec_event, args_len) == 356, "exec.args_len");
static_assert(offsetof(struct netmon_exec_event, flags) == 358, "exec.flags");
static_assert(offsetof(struct netmon_exec_event, path) == 360, "exec.path");
static_assert(offsetof(struct netmon_exec_event, args) == 4456, "exec.args");
static_assert(sizeof(struct netmon_fork_event) == 368, "netmon_fork_event");
static_assert(offsetof(struct netmon_fork_event, task) == 16, "fork.task");
static_assert(offsetof(struct netmon_fork_event, parent_start_time_ns) == 352, "fork.parent_start_time_ns");
static_assert(offsetof(struct netmon_fork_event, parent_pid) == 360, "fork.parent_pid");
static_assert(sizeof(struct netmon_exit_event) == 40, "netmon_exit_event");
static_assert(offsetof(struct netmon_exit_event, start_time_ns) == 16, "exit.start_time_ns");
static_assert(offsetof(struct netmon_exit_event, pid) == 24, "exit.pid");
static_assert(offsetof(struct netmon_exit_event, exit_code) == 32, "exit.exit_code");

namespace {

using Batch = std::vector<uint8_t>;

class Probe;

// [{ mode, ok, code, step, message }]: the modes Load() tried, in order.
Napi::Array AttemptsToJs(Napi::Env env, const std::vector<netmon::Attempt> &attempts) {
  Napi::Array a = Napi::Array::New(env, attempts.size());
  for (size_t i = 0; i < attempts.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("mode", netmon::ModeName(attempts[i].mode));
    o.Set("ok", attempts[i].ok);
    o.Set("code", attempts[i].code);
    o.Set("step", attempts[i].step);
    o.Set("message", attempts[i].message);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

// Runs on the JS thread for each batch the poll thread queued.
void CallJs(Napi::Env env, Napi::Function on_batch, Probe *ctx, Batch *batch);
using Tsfn = Napi::TypedThreadSafeFunction<Probe, Batch, CallJs>;

// Batches for a JavaScript consumer that copies what it keeps (start()'s
// `lend`): lent for the call, then detached from JavaScript and reused, so
// memory stays a few batches instead of what the garbage collector has not
// freed yet (V8 frees external memory only after tens of MB of it).
class BatchPool {
 public:
  // Poll thread.
  Batch *Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return new Batch();
    Batch *b = free_.back();
    free_.pop_back();
    return b;
  }
  // JS thread (after the call), or the poll thread (a batch never sent).
  void Give(Batch *b) {
    b->clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kKeep) free_.push_back(b);
    else delete b;
  }
  ~BatchPool() {
    for (Batch *b : free_) delete b;
  }

 private:
  static constexpr size_t kKeep = 4;
  std::mutex mu_;
  std::vector<Batch *> free_;
};

class Probe : public Napi::ObjectWrap<Probe> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Probe",
                       {InstanceMethod("start", &Probe::Start),
                        InstanceMethod("stop", &Probe::Stop),
                        InstanceMethod("lost", &Probe::Lost)});
  }

  explicit Probe(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Probe>(info) {}

  // JS thread (GC). start() holds a reference until closed, so a running
  // probe is never collected; nothing to stop here.
  ~Probe() override = default;

 private:
  // JS thread.
  Napi::Value Start(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (started_) throw Napi::Error::New(env, "probe already started");
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() ||
        !info[2].IsFunction() || !info[3].IsFunction())
      throw Napi::TypeError::New(env, "start(mode, ringBytes, onBatch, onClose[, pinDir])");
    auto mode = static_cast<netmon::Mode>(info[0].As<Napi::Number>().Int32Value());
    uint32_t ring_bytes = info[1].As<Napi::Number>().Uint32Value();
    std::string pin_dir = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
    lend_ = info.Length() > 5 && info[5].ToBoolean().Value();

    netmon::Failure fail;
    if (!netmon::Load(mode, ring_bytes, pin_dir, &Probe::OnSample, this, loaded_, fail)) {
      Napi::Error e = Napi::Error::New(env, fail.message);
      e.Set("code", Napi::String::New(env, fail.code));
      e.Set("step", Napi::String::New(env, fail.step));
      e.Set("errno", Napi::Number::New(env, fail.err));
      e.Set("detail", Napi::String::New(env, fail.detail));
      e.Set("attempts", AttemptsToJs(env, fail.attempts));
      throw e;
    }

    stop_fd_ = netmon::Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    epoll_fd_ = netmon::Fd(epoll_create1(EPOLL_CLOEXEC));
    if (stop_fd_.get() < 0 || epoll_fd_.get() < 0 || !Watch(stop_fd_.get(), kStopTag) ||
        !Watch(ring_buffer__epoll_fd_compat(), kRingTag)) {
      int e = errno;
      loaded_.reset();
      throw Napi::Error::New(env, std::string("poll setup: ") + strerror(e));
    }

    on_close_ = Napi::Persistent(info[3].As<Napi::Function>());
    // Bounded queue: when JavaScript falls behind, the poll thread waits,
    // the ring buffer fills and the kernel counts what it could not reserve.
    tsfn_ = Tsfn::New(env, info[2].As<Napi::Function>(), "netmon-probe", 64, 1, this,
                      [](Napi::Env env, void *, Probe *self) { self->Finalize(env); });
    Ref();
    started_ = true;
    poller_ = std::thread([this] { PollLoop(); });

    Napi::Object r = Napi::Object::New(env);
    r.Set("mode", netmon::ModeName(loaded_->mode()));
    r.Set("reason", loaded_->reason());
    r.Set("attempts", AttemptsToJs(env, loaded_->attempts()));
    return r;
  }

  // JS thread. Idempotent: asks the poll thread to detach, drain and finish;
  // onClose runs when everything is freed.
  Napi::Value Stop(const Napi::CallbackInfo &info) {
    if (started_ && !stopping_.exchange(true)) {
      uint64_t one = 1;
      ssize_t n = write(stop_fd_.get(), &one, sizeof(one));
      (void)n;
    }
    return info.Env().Undefined();
  }

  // JS thread (map reads through the fd are safe beside the poll thread).
  Napi::Value Lost(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> by_kind = final_lost_;
    if (loaded_ && !closed_) loaded_->ReadLost(by_kind);
    Napi::Array a = Napi::Array::New(env, by_kind.size());
    for (size_t i = 0; i < by_kind.size(); i++)
      a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(by_kind[i])));
    return a;
  }

  static constexpr uint32_t kStopTag = 1, kRingTag = 2;
  // The kernel wakes the poll thread only once a batch is waiting (see
  // wakeup_bytes in netmon.bpf.c); below that, records wait at most this long.
  static constexpr int kPollIntervalMs = 20;

  int ring_buffer__epoll_fd_compat() const { return ring_buffer__epoll_fd(loaded_->ring()); }

  bool Watch(int fd, uint32_t tag) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    return epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  // A batch stops growing past this (the ring may hold megabytes): JavaScript
  // gets it and the next one starts, so a batch's memory stays small.
  static constexpr size_t kBatchBytes = 1 << 20;
  // OnSample's "batch full" (libbpf stops consuming on a negative return,
  // the sample itself consumed).
  static constexpr int kBatchFull = -EFBIG;

  // Poll thread: libbpf calls this for each sample during ring_buffer__consume.
  static int OnSample(void *ctx, void *data, size_t size) {
    auto *self = static_cast<Probe *>(ctx);
    auto *p = static_cast<const uint8_t *>(data);
    if (!self->batch_) {
      self->batch_ = self->lend_ ? self->pool_.Take() : new Batch();
      self->batch_->reserve(64 * 1024);
    }
    self->batch_->insert(self->batch_->end(), p, p + size);
    return self->batch_->size() >= kBatchBytes ? kBatchFull : 0;
  }

  // Poll thread: consume what is in the ring and queue it in batches.
  // Returns false once JavaScript is gone (queue closing).
  bool Drain() {
    for (;;) {
      batch_ = nullptr;  // allocated by the first sample
      int n = ring_buffer__consume(loaded_->ring());
      if (!batch_) return true;  // a timer tick with nothing waiting
      napi_status st = tsfn_.BlockingCall(batch_);
      if (st != napi_ok) {
        Dispose(batch_);
        return false;
      }
      if (n != kBatchFull) return true;
    }
  }

 public:
  // JS thread, in CallJs: a batch JavaScript is done with.
  void Dispose(Batch *batch) {
    if (lend_) pool_.Give(batch);
    else delete batch;
  }
  bool lends() const { return lend_; }

 private:

  // Poll thread.
  void PollLoop() {
    struct epoll_event evs[2];
    bool running = true;
    while (running) {
      int n = epoll_wait(epoll_fd_.get(), evs, 2, kPollIntervalMs);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < n; i++)
        if (evs[i].data.u32 == kStopTag) running = false;
      if (!Drain()) break;
    }
    // Detach first so nothing new arrives, then hand over what is left.
    loaded_->Detach();
    Drain();
    tsfn_.Release();
  }

  // JS thread, once the poll thread released the queue and it drained.
  void Finalize(Napi::Env env) {
    // Also reached at environment teardown without stop(): wake the thread.
    if (!stopping_.exchange(true)) {
      uint64_t one = 1;
      ssize_t n = write(stop_fd_.get(), &one, sizeof(one));
      (void)n;
    }
    if (poller_.joinable()) poller_.join();
    loaded_->ReadLost(final_lost_);
    closed_ = true;
    loaded_.reset();  // ring buffer, links, maps, programs
    epoll_fd_.reset();
    stop_fd_.reset();
    Napi::FunctionReference cb = std::move(on_close_);
    Unref();
    if (!cb.IsEmpty()) cb.Call({});
    (void)env;
  }

  bool started_ = false;
  bool closed_ = false;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<netmon::Loaded> loaded_;
  netmon::Fd stop_fd_;
  netmon::Fd epoll_fd_;
  Tsfn tsfn_;
  std::thread poller_;
  Batch *batch_ = nullptr;  // poll thread only
  bool lend_ = false;       // set before the poll thread starts
  BatchPool pool_;
  std::vector<uint64_t> final_lost_ = std::vector<uint64_t>(NETMON_KIND_MAX, 0);
  Napi::FunctionReference on_close_;
};

void CallJs(Napi::Env env, Napi::Function on_batch, Probe *probe, Batch *batch) {
  if (env == nullptr || on_batch == nullptr) {  // torn down: drop
    probe->Dispose(batch);
    return;
  }
  if (!probe->lends()) {
    // Zero-copy: the Buffer owns the vector's bytes and frees them when collected.
    auto buf = Napi::Buffer<uint8_t>::New(env, batch->data(), batch->size(),
                                          [](Napi::Env, uint8_t *, Batch *b) { delete b; }, batch);
    on_batch.Call({buf});
    return;
  }
  // Lent: once the call returns, the ArrayBuffer is detached, so no view can
  // read the memory after the pool reuses it. Should detaching fail, the
  // Buffer keeps the batch and its finalizer frees it, as without lending.
  struct Loan {
    Batch *batch;
  };
  auto *loan = new Loan{batch};
  auto buf = Napi::Buffer<uint8_t>::New(
      env, batch->data(), batch->size(),
      [](Napi::Env, uint8_t *, Loan *l) {
        delete l->batch;  // nullptr once given back to the pool
        delete l;
      },
      loan);
  napi_value ab = buf.ArrayBuffer();
  auto give_back = [&] {
    if (napi_detach_arraybuffer(env, ab) != napi_ok) return;
    probe->Dispose(loan->batch);
    loan->batch = nullptr;
  };
  try {
    on_batch.Call({buf});
  } catch (...) {
    give_back();
    throw;
  }
  give_back();
}

Napi::Value ClockOffsetNs(const Napi::CallbackInfo &info) {
  return Napi::BigInt::New(info.Env(), netmon::BootToRealtimeOffsetNs());
}

Napi::Object ProgramToJs(Napi::Env env, const netmon::ProgramNeeds &p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", p.name);
  o.Set("section", p.section);
  const char *type = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(p.prog_type));
  const char *attach =
      libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(p.attach_type));
  o.Set("progType", type ? type : std::to_string(p.prog_type).c_str());
  // 0 is BPF_CGROUP_INET_INGRESS, and also "none" for kprobes and raw tracepoints
  bool none = p.attach_type == 0 && p.prog_type != BPF_PROG_TYPE_CGROUP_SKB;
  std::string attach_name = attach ? attach : std::to_string(p.attach_type);
  o.Set("attachType", none ? std::string() : attach_name);
  o.Set("target", p.target);
  o.Set("optional", p.optional);
  Napi::Array h = Napi::Array::New(env, p.helpers.size());
  for (size_t i = 0; i < p.helpers.size(); i++) h.Set(static_cast<uint32_t>(i), p.helpers[i]);
  o.Set("helpers", h);
  return o;
}

// { programs: [...], modes: { fentry: { programs: [name], probes: [{ program,
//   section, progType, attachType, target, helper, helperName }] }, ... } }
// `probes` is the list Load() checks before loading the mode. No privileges
// needed (the object is opened, not loaded).
Napi::Value ModeRequirements(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::vector<netmon::ProgramNeeds> programs;
  std::string err;
  if (!netmon::DescribeObject(programs, err)) throw Napi::Error::New(env, err);
  Napi::Object r = Napi::Object::New(env);
  Napi::Array all = Napi::Array::New(env, programs.size());
  for (size_t i = 0; i < programs.size(); i++)
    all.Set(static_cast<uint32_t>(i), ProgramToJs(env, programs[i]));
  r.Set("programs", all);
  Napi::Object modes = Napi::Object::New(env);
  for (netmon::Mode m : netmon::kAutoOrder) {
    Napi::Object mo = Napi::Object::New(env);
    Napi::Array names = Napi::Array::New(env);
    for (const auto &p : programs)
      if (netmon::WantedIn(m, p.section.c_str())) names.Set(names.Length(), p.name);
    mo.Set("programs", names);
    std::vector<netmon::HelperProbe> probes = netmon::HelperProbes(m, programs);
    Napi::Array pa = Napi::Array::New(env, probes.size());
    for (size_t i = 0; i < probes.size(); i++) {
      Napi::Object o = ProgramToJs(env, *probes[i].program);
      o.Delete("helpers");
      o.Set("program", probes[i].program->name);
      o.Set("helper", probes[i].helper);
      o.Set("helperName", netmon::HelperName(probes[i].helper));
      pa.Set(static_cast<uint32_t>(i), o);
    }
    mo.Set("probes", pa);
    modes.Set(netmon::ModeName(m), mo);
  }
  r.Set("modes", modes);
  return r;
}

Napi::Value WantedIn(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString())
    throw Napi::TypeError::New(env, "wantedIn(mode, section)");
  auto mode = static_cast<netmon::Mode>(info[0].As<Napi::Number>().Int32Value());
  std::string sec = info[1].As<Napi::String>().Utf8Value();
  return Napi::Boolean::New(env, netmon::WantedIn(mode, sec.c_str()));
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Probe", Probe::Init(env));
  exports.Set("clockOffsetNs", Napi::Function::New(env, ClockOffsetNs));
  exports.Set("modeRequirements", Napi::Function::New(env, ModeRequirements));
  exports.Set("wantedIn", Napi::Function::New(env, WantedIn));
  return exports;
}

}  // namespace

NODE_API_MODULE(netmon, InitModule)
