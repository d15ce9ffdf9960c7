// SPDX-License-Identifier: Apache-2.0
// One gzip member written in pieces with libdeflate (vendor/libdeflate, with
// one addition: libdeflate_deflate_compress_sync). libdeflate compresses
// whole buffers only, about 1.4x faster than zlib at level 6 and a few
// percent smaller; each piece (src/gzip.ts cuts the bytes every 1 MiB) is
// compressed on its own into non-final blocks that end byte-aligned, so the
// pieces concatenate into ONE DEFLATE stream. The archive stays a single-member
// gzip file: readers that stop after a member's end (Trino before 422,
// some Java GZIPInputStream uses) would lose the rest of a multi-member one.
// The price of independent pieces is the 32 KiB window at each piece's start.
//
// JS surface (wrapped by src/gzip.ts):
//   GzipMember.header -> Buffer  the member's 10-byte header, the same for all
//   new GzipMember(level)
//   member.deflate(piece: Buffer, cb(err, out: Buffer))  on the libuv pool;
//                            one at a time per member (the CRC runs on in order)
//   member.finish() -> Buffer   the final empty block, CRC32 and size (the
//                               gzip trailer)
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "libdeflate.h"

namespace {

// ID1 ID2, CM 8 (deflate), no flags, MTIME 0 (reproducible), XFL 0, OS 3 (Unix): as zlib writes it.
constexpr uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
// A final block with fixed codes holding only its end: what zlib writes for Z_FINISH with no input left.
constexpr uint8_t kFinalBlock[2] = {0x03, 0x00};

struct Compressor {
  libdeflate_compressor* c;
  explicit Compressor(int level) : c(libdeflate_alloc_compressor(level)) {}
  ~Compressor() { libdeflate_free_compressor(c); }
};

class GzipMember : public Napi::ObjectWrap<GzipMember> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GzipMember",
                       {InstanceMethod<&GzipMember::Deflate>("deflate"), InstanceMethod<&GzipMember::Finish>("finish"),
                        StaticValue("header", Napi::Buffer<uint8_t>::Copy(env, kHeader, sizeof kHeader))});
  }

  explicit GzipMember(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GzipMember>(info) {
    const int level = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    if (level < 1 || level > 12) throw Napi::RangeError::New(info.Env(), "GzipMember(level): level 1..12");
    compressor_ = std::make_shared<Compressor>(level);
    if (!compressor_->c) throw Napi::Error::New(info.Env(), "libdeflate_alloc_compressor failed");
  }

 private:
  class DeflateWork : public Napi::AsyncWorker {
   public:
    DeflateWork(Napi::Function cb, GzipMember* member, Napi::Buffer<uint8_t> piece)
        : Napi::AsyncWorker(cb, "netmon:gzip"), member_(member), compressor_(member->compressor_), piece_ref_(Napi::Persistent(piece)),
          in_(piece.Data()), in_len_(piece.Length()), crc_in_(member->crc_) {
      Receiver().Set("member", member->Value());  // keeps the member alive while the work runs
    }

    void Execute() override {
      const size_t bound = libdeflate_deflate_compress_bound(compressor_->c, in_len_) + 5;
      out_.reset(new uint8_t[bound]);
      out_len_ = libdeflate_deflate_compress_sync(compressor_->c, in_, in_len_, out_.get(), bound);
      if (out_len_ == 0) SetError("libdeflate: the compressed piece did not fit its bound");
      crc_ = libdeflate_crc32(crc_in_, in_, in_len_);
    }

    void OnOK() override {
      member_->crc_ = crc_;
      member_->size_ += in_len_;
      member_->busy_ = false;
      uint8_t* data = out_.release();
      auto out = Napi::Buffer<uint8_t>::New(Env(), data, out_len_, [](Napi::Env, uint8_t* p) { delete[] p; });
      Callback().Call({Env().Null(), out});
    }

    void OnError(const Napi::Error& e) override {
      member_->busy_ = false;
      member_->failed_ = true;
      Callback().Call({e.Value()});
    }

   private:
    GzipMember* member_;
    std::shared_ptr<Compressor> compressor_;
    Napi::Reference<Napi::Buffer<uint8_t>> piece_ref_;
    const uint8_t* in_;
    size_t in_len_;
    // The CRC of the pieces before this one: it runs on over this piece.
    uint32_t crc_in_;
    std::unique_ptr<uint8_t[]> out_;
    size_t out_len_ = 0;
    uint32_t crc_ = 0;
  };

  // deflate(piece, cb)
  Napi::Value Deflate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "deflate(piece: Buffer, cb)");
    auto piece = info[0].As<Napi::Buffer<uint8_t>>();
    if (piece.Length() == 0) throw Napi::RangeError::New(env, "deflate: an empty piece");
    if (busy_) throw Napi::Error::New(env, "deflate: the previous piece is still being compressed");
    if (finished_ || failed_) throw Napi::Error::New(env, "deflate: the member is finished");
    busy_ = true;
    (new DeflateWork(info[1].As<Napi::Function>(), this, piece))->Queue();
    return env.Undefined();
  }

  // finish() -> the final block and the gzip trailer
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_) throw Napi::Error::New(env, "finish: a piece is still being compressed");
    if (failed_) throw Napi::Error::New(env, "finish: a piece failed");
    finished_ = true;
    uint8_t tail[10];
    std::memcpy(tail, kFinalBlock, 2);
    for (int i = 0; i < 4; i++) tail[2 + i] = uint8_t(crc_ >> (8 * i));
    const uint32_t isize = uint32_t(size_);  // the size modulo 2^32 (RFC 1952)
    for (int i = 0; i < 4; i++) tail[6 + i] = uint8_t(isize >> (8 * i));
    return Napi::Buffer<uint8_t>::Copy(env, tail, sizeof tail);
  }

  std::shared_ptr<Compressor> compressor_;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
  bool busy_ = false;
  bool finished_ = false;
  bool failed_ = false;
};

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("GzipMember", GzipMember::Define(env));
  return exports;
}

NODE_API_MODULE(gzip_member, Init)
