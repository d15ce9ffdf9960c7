// Programs kept across sensor processes: pinned in bpffs, adopted by the next
// sensor of the same version, drained and removed by a sensor of another one.
//
//   <pin_dir>/<version>-<mode>-<links>/events   the ring buffer
//                                       /lost     the per-CPU lost counters
//                                       /link-N   every attached link
// <version> hashes the BPF object and the ring buffer size; <links> is how
// many links were pinned, so a half-removed set is never adopted.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "loader.h"
#include "netmon.skel.h"

namespace netmon {

struct Pins {
  // FNV-1a of the object's bytes and the ring size: the same build, the same maps.
  static std::string Version(uint32_t ring_bytes) {
    size_t size = 0;
    const unsigned char *bytes = static_cast<const unsigned char *>(netmon_bpf__elf_bytes(&size));
    uint64_t h = 1469598103934665603ULL;
    auto mix = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ULL; };
    for (size_t i = 0; i < size; i++) mix(bytes[i]);
    for (int i = 0; i < 4; i++) mix(static_cast<unsigned char>(ring_bytes >> (8 * i)));
    char out[17];
    snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
    return out;
  }

  static bool OnBpffs(const std::string &path) {
    struct statfs st;
    return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
  }

  static std::vector<std::string> Entries(const std::string &dir) {
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    if (!d) return out;
    while (struct dirent *e = readdir(d))
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) out.push_back(e->d_name);
    closedir(d);
    return out;
  }

  static void Remove(const std::string &dir) {
    for (const std::string &name : Entries(dir)) unlink((dir + "/" + name).c_str());
    rmdir(dir.c_str());
  }

  // "<version>-<mode>-<links>" → mode and links, if it is this version's.
  static bool Parse(const std::string &name, const std::string &version, Mode &mode, int &links) {
    if (name.compare(0, version.size() + 1, version + "-") != 0) return false;
    std::string rest = name.substr(version.size() + 1);
    size_t dash = rest.rfind('-');
    if (dash == std::string::npos) return false;
    std::string mode_name = rest.substr(0, dash);
    links = atoi(rest.c_str() + dash + 1);
    for (Mode m : {Mode::Fentry, Mode::Kprobe, Mode::Tracepoint})
      if (mode_name == ModeName(m)) {
        mode = m;
        return links > 0;
      }
    return false;
  }

  // The set pinned by an earlier sensor of this version (and of the requested
  // mode, unless auto), still whole: its ring buffer and counters.
  static bool Adopt(const std::string &root, uint32_t ring_bytes, Mode requested, SampleFn fn,
                    void *ctx, std::unique_ptr<Loaded> &out) {
    std::string version = Version(ring_bytes);
    for (const std::string &name : Entries(root)) {
      Mode mode = Mode::Tracepoint;
      int links = 0;
      if (!Parse(name, version, mode, links)) continue;
      if (requested != Mode::Auto && requested != mode) continue;
      std::string dir = root + "/" + name;
      int found = 0;
      for (const std::string &f : Entries(dir)) found += f.compare(0, 5, "link-") == 0;
      if (found != links) continue;
      auto l = std::unique_ptr<Loaded>(new Loaded());
      l->events_fd_ = Fd(bpf_obj_get((dir + "/events").c_str()));
      l->lost_fd_ = Fd(bpf_obj_get((dir + "/lost").c_str()));
      if (l->events_fd_.get() < 0 || l->lost_fd_.get() < 0) continue;
      l->ring_ = RingPtr(ring_buffer__new(l->events_fd_.get(), reinterpret_cast<ring_buffer_sample_fn>(fn), ctx, nullptr));
      if (!l->ring_) continue;
      l->mode_ = mode;
      l->pinned_ = true;
      l->reason_ = std::string("adopted the programs an earlier sensor left running (") + dir + ")";
      out = std::move(l);
      return true;
    }
    return false;
  }

  // Pins a freshly attached set; on failure nothing stays pinned (the sensor
  // runs unpinned) and `why` says so.
  static bool Pin(Loaded &l, const std::string &root, uint32_t ring_bytes, std::string &dir, std::string &why) {
    dir = root + "/" + Version(ring_bytes) + "-" + ModeName(l.mode_) + "-" + std::to_string(l.links_.size());
    Remove(dir);  // a half-made set of an earlier crash
    if (mkdir(dir.c_str(), 0700) != 0) {
      why = "creating " + dir + ": " + strerror(errno);
      return false;
    }
    int err = bpf_map__pin(l.skel_->maps.events, (dir + "/events").c_str());
    if (!err) err = bpf_map__pin(l.skel_->maps.lost, (dir + "/lost").c_str());
    for (size_t i = 0; !err && i < l.links_.size(); i++)
      err = bpf_link__pin(l.links_[i].get(), (dir + "/link-" + std::to_string(i)).c_str());
    if (err) {
      why = "pinning in " + dir + ": " + strerror(-err);
      for (auto &link : l.links_) bpf_link__unpin(link.get());
      Remove(dir);
      return false;
    }
    l.pinned_ = true;
    return true;
  }

  // Other versions' sets: what their ring buffer holds goes to `fn` first,
  // then their links go (which detaches their programs).
  static int Retire(const std::string &root, const std::string &keep, SampleFn fn, void *ctx) {
    int retired = 0;
    for (const std::string &name : Entries(root)) {
      std::string dir = root + "/" + name;
      if (dir == keep) continue;
      for (const std::string &f : Entries(dir))
        if (f.compare(0, 5, "link-") == 0) unlink((dir + "/" + f).c_str());
      Fd events(bpf_obj_get((dir + "/events").c_str()));
      if (events.get() >= 0) {
        ring_buffer *ring = ring_buffer__new(events.get(), reinterpret_cast<ring_buffer_sample_fn>(fn), ctx, nullptr);
        if (ring) {
          ring_buffer__consume(ring);
          ring_buffer__free(ring);
        }
      }
      Remove(dir);
      retired++;
    }
    return retired;
  }
};

bool AdoptPinned(const std::string &root, uint32_t ring_bytes, Mode requested, SampleFn fn, void *ctx,
                 std::unique_ptr<Loaded> &out, Failure &fail) {
  if (mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
    int e = errno;
    fail.code = "EPIN";
    fail.step = "pin";
    fail.message = "creating the pin directory " + root + ": " + strerror(e);
    fail.err = e;
    return false;
  }
  if (!Pins::OnBpffs(root)) {
    fail.code = "EPIN";
    fail.step = "pin";
    fail.message = "sensor.pin_dir " + root + " is not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)";
    fail.err = EINVAL;
    return false;
  }
  return Pins::Adopt(root, ring_bytes, requested, fn, ctx, out);
}

std::string PinLoaded(Loaded &l, const std::string &root, uint32_t ring_bytes, SampleFn fn, void *ctx) {
  std::string dir, why;
  if (!Pins::Pin(l, root, ring_bytes, dir, why)) return "not pinned (" + why + "): a restart will miss what happens meanwhile";
  int retired = Pins::Retire(root, dir, fn, ctx);
  std::string note = "pinned in " + dir;
  if (retired > 0) note += "; replaced " + std::to_string(retired) + " set(s) of another version, drained first";
  return note;
}

}  // namespace netmon
